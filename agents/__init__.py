"""The agents: manager (proposes and revises criteria), worker (judges pairs), and the LangGraph flow."""
