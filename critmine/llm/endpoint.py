"""Which model to ask and how: the settings every chat backend shares."""

from __future__ import annotations

from pydantic import BaseModel, Field

from critmine.defaults import DEFAULT_MODEL
from critmine.llm.adapters import ServerKind

REMOTE_CONCURRENCY = 16  # pairs in flight to a server at a URL (bench_remote.py: 8.3x the requests/s of 1)


class RequestPolicy(BaseModel):
    """Which model, and how patiently and how many at a time to ask it."""

    model: str = Field(DEFAULT_MODEL, description="a model the server knows, or an embedded model name / .gguf path")
    api_key: str = Field("none", exclude=True)
    timeout_s: float = Field(120.0, description="seconds per request")
    max_retries: int = Field(4, description="retries of a failed or unusable answer")
    concurrency: int | None = Field(None, ge=1, description="pairs in flight per endpoint (default: 1 for the "
                                    f"embedded model, {REMOTE_CONCURRENCY} for a server at a URL)")
    backoff_s: float = Field(0.5, description="first retry delay in seconds (doubles)")


class Endpoint(RequestPolicy):
    """A live endpoint: a resolved URL and the server's dialect."""

    concurrency: int = Field(1, ge=1, description="pairs in flight")
    base_url: str
    kind: ServerKind = "openai"
