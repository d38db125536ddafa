"""The check's public entry points (the stages live in `backup_monitor.check`)."""

from __future__ import annotations

from backup_monitor.check.model import Clients, Summary
from backup_monitor.check.pipeline import run_check
from backup_monitor.check.targets import DISCOVERY_KEY_PREFIX, resolve_targets
from backup_monitor.progress import NO_PROGRESS, Progress

__all__ = [
    "DISCOVERY_KEY_PREFIX",
    "NO_PROGRESS",
    "Clients",
    "Progress",
    "Summary",
    "resolve_targets",
    "run_check",
]
