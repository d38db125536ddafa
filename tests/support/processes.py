"""Environments for the command run as a subprocess: only what a shell would give it, nothing another test
left in this process's os.environ (a leaked CHECK_TIME_LIMIT_SECONDS or STATE_TABLE would change the run)."""

from __future__ import annotations

import os

KEPT = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


def clean_env() -> dict[str, str]:
    """The variables a subprocess needs to start, without the monitor's or AWS's settings."""
    return {k: v for k, v in os.environ.items() if k in KEPT}
