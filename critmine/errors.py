"""Errors that stop a command with one line saying what failed and what to do (exit code 1)."""

from __future__ import annotations


class RunStopped(RuntimeError):
    """A command cannot go on; its message is one line naming the cause and the fix."""
