"""The LLM client layer: one client for every OpenAI-compatible endpoint."""

from critmine.llm.adapters import ServerKind, detect_server_kind
from critmine.llm.cache import ResponseCache
from critmine.llm.client import EndpointError, LLMClient, LLMResult, letter_positions, parse_json_tolerant
from critmine.llm.endpoint import Endpoint
from critmine.llm.usage import Budget, BudgetExceeded, PhaseUsage, Usage

__all__ = ["Budget", "BudgetExceeded", "Endpoint", "EndpointError", "LLMClient", "LLMResult", "PhaseUsage",
           "ResponseCache",
           "ServerKind", "Usage", "detect_server_kind", "letter_positions",
           "parse_json_tolerant"]
