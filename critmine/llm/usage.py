"""Usage accounting per phase, and the call/token budget."""

from __future__ import annotations

from pydantic import BaseModel, Field


class BudgetExceeded(Exception):
    """The run hit --max-calls or --max-tokens; it can be resumed with a larger budget."""


class PhaseUsage(BaseModel):
    calls: int = Field(0, description="requests sent to the server (retries included)")
    cached_calls: int = Field(0, description="answers served from the response cache (not paid)")
    failures: int = Field(0, description="calls that still failed after every retry")
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = Field(0, description="prompt tokens the server reused from its prefix cache")
    replayed_tokens: int = Field(0, description="prompt + completion tokens of the answers served from the "
                                               "response cache (what those calls cost when they were paid)")

    @property
    def answers(self) -> int:
        """Answers used: paid calls plus those served from the response cache."""
        return self.calls + self.cached_calls

    @property
    def all_tokens(self) -> int:
        """Tokens of every answer used, the cached ones at what they cost when paid."""
        return self.prompt_tokens + self.completion_tokens + self.replayed_tokens

    def add(self, other: PhaseUsage) -> None:
        for name in PhaseUsage.model_fields:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class Usage(BaseModel):
    """All phases of one run; saved as usage.json and reloaded on resume."""

    phases: dict[str, PhaseUsage] = Field(default_factory=dict)

    def phase(self, name: str) -> PhaseUsage:
        return self.phases.setdefault(name, PhaseUsage())

    def total(self) -> PhaseUsage:
        t = PhaseUsage()
        for p in self.phases.values():
            t.add(p)
        return t

    def table(self) -> str:
        cols = list(PhaseUsage.model_fields)
        rows = [(name, p) for name, p in sorted(self.phases.items())] + [("TOTAL", self.total())]
        head = f"{'phase':<12}" + "".join(f"{c:>18}" for c in cols)
        lines = [head] + [f"{n:<12}" + "".join(f"{getattr(p, c):>18}" for c in cols) for n, p in rows]
        return "\n".join(lines)


class Budget(BaseModel):
    """Upper bounds on paid work for the whole run (earlier attempts of a resumed run included)."""

    max_calls: int | None = None
    max_tokens: int | None = None

    def check(self, usage: Usage, in_flight: int = 0) -> None:
        """Raise BudgetExceeded when one more call would pass a bound (`in_flight`: calls sent, not yet counted)."""
        t = usage.total()
        if self.max_calls is not None and t.calls + in_flight >= self.max_calls:
            raise BudgetExceeded(f"call budget reached ({t.calls + in_flight} >= --max-calls {self.max_calls})")
        if self.max_tokens is not None and t.prompt_tokens + t.completion_tokens >= self.max_tokens:
            raise BudgetExceeded(f"token budget reached (>= --max-tokens {self.max_tokens})")
