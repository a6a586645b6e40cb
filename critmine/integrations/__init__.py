"""critmine inside other tools: a datatrove filter (critmine.integrations.datatrove, extra `datatrove`) and a
DSPy-style judge built from criteria.json (critmine.integrations.judge)."""
