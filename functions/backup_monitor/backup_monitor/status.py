"""`backup-monitor status`: the daily report from the state alone (no Scalingo call, nothing sent)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from backup_monitor.config import Settings, Target
from backup_monitor.daily_report import report_key
from backup_monitor.monitor import DISCOVERY_KEY_PREFIX
from backup_monitor.report import build_report, render_text
from backup_monitor.state.base import StateError


class StatusError(Exception):
    """The state cannot be read, or holds nothing to report yet."""


def known_targets(settings: Settings, discovered: dict[str, str] | None) -> list[Target]:
    """MONITORED_DATABASES, or the databases the last discovery found (cached in the state)."""
    if settings.monitored:
        return list(settings.monitored)
    return [Target(*key.split("/", 2)) for key in sorted(discovered or {}) if key.count("/") == 2]


def read_status(settings: Settings, now: datetime) -> str:
    """The report as terminal text; StatusError when the state cannot say anything yet."""
    if not settings.state_table and not Path(settings.state_path).exists():
        raise StatusError(f"no state file at {settings.state_path}: run `backup-monitor check` first")
    from backup_monitor.wiring import build_store

    try:
        store = build_store(settings)
        discovery_key = DISCOVERY_KEY_PREFIX + ",".join(settings.regions)
        special = store.load_many([discovery_key, report_key(settings)])
        discovery = special.get(discovery_key)
        targets = known_targets(settings, discovery.discovered if discovery else None)
        if not targets:
            raise StatusError("no database known yet (none configured, none discovered): run `backup-monitor check`")
        records = store.load_many([t.key for t in targets])
    except StateError as exc:
        raise StatusError(f"cannot read the state: {exc}") from None
    text = render_text(build_report(settings, targets, records, now))
    last = special.get(report_key(settings))
    if settings.daily_report is None:
        footer = "Daily report: off (DAILY_REPORT_AT is empty)"
    else:
        sent = last.reported_on if last and last.reported_on else "never"
        footer = f"Daily report: at {settings.daily_report}; last sent for {sent}"
    return f"{text}\n{footer}\n"
