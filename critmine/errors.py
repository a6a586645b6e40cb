"""Errors that stop a command with one line saying what failed and what to do (exit code 1)."""

from __future__ import annotations


class RunStopped(RuntimeError):
    """A command cannot go on; its message is one line naming the cause and the fix."""


class NoSignal(RunStopped):
    """Mining finished, but no criterion agrees with people better than chance with a margin its interval supports
    (exit code 4): the criteria are written, and the message says what was tried and what to try next."""
