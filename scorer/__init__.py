"""Lightweight Bradley–Terry scorers distilled from criteria judgments (see the distil-and-apply issue)."""
