"""The check's public entry points (the stages live in `backup_monitor.check`)."""

from __future__ import annotations

from backup_monitor.check.model import Clients, Summary
from backup_monitor.check.pipeline import run_check
from backup_monitor.check.targets import DISCOVERY_KEY_PREFIX, resolve_targets

__all__ = [
    "DISCOVERY_KEY_PREFIX",
    "Clients",
    "Summary",
    "resolve_targets",
    "run_check",
]
