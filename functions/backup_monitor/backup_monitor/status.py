"""`backup-monitor status`: the daily report from the state alone (no Scalingo call, nothing sent)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from backup_monitor.check.targets import discovery_key as discovery_key_of
from backup_monitor.config import ConfigError, Settings, Target
from backup_monitor.daily_report import report_key
from backup_monitor.records import Record
from backup_monitor.report import build_report, render_text
from backup_monitor.state.base import StateError, load_renamed
from backup_monitor.state.chunks import complete
from backup_monitor.state.silences import SILENCES_KEY


class StatusError(Exception):
    """The state cannot be read, or holds nothing to report yet."""


def known_targets(settings: Settings, discovery: Record | None) -> tuple[list[Target], int | None]:
    """MONITORED_DATABASES, or what the last discovery found (cached in the state) less EXCLUDE_APPS.

    Also the number of apps EXCLUDE_APPS leaves out (None with MONITORED_DATABASES), counted as a check does.
    """
    if settings.monitored:
        return list(settings.monitored), None
    found = [Target(*key.split("/", 2)) for key in sorted(discovery.discovered if discovery else {})]
    excluded_apps = set(discovery.excluded_apps if discovery else ()) | {
        t.app for t in found if settings.excluded(t.app)
    }
    return [t for t in found if not settings.excluded(t.app)], len(excluded_apps)


def read_status(settings: Settings, now: datetime, *, problems: bool = False) -> str:
    """The report as terminal text; StatusError when the state cannot say anything yet, ConfigError when
    STATE_PATH (or STATE_TABLE) cannot be opened. With shards (SCALINGO_API_TOKEN_PARAMETERS), `settings` are
    one shard's (Settings.for_shard): its discovered databases and its report's record."""
    if not settings.state_table and not Path(settings.state_path).exists():
        directory = Path(settings.state_path).absolute().parent
        if not directory.is_dir():  # a wrong STATE_PATH, not a state yet to be made
            raise ConfigError("STATE_PATH", f"no state file at {settings.state_path}: no directory {directory}")
        raise StatusError(f"no state file at {settings.state_path}: run `backup-monitor check` first")
    from backup_monitor.wiring import build_store

    try:
        store = build_store(settings)
        discovery_key = discovery_key_of(settings)
        special = store.load_many([discovery_key, report_key(settings), SILENCES_KEY])
        discovery = complete(store, special.get(discovery_key))  # its parts, when stored in chunks
        targets, excluded = known_targets(settings, discovery)
        if not targets:
            raise StatusError("no database known yet (none configured, none discovered): run `backup-monitor check`")
        records = load_renamed(store, {t.key: t.name for t in targets})
    except StateError as exc:
        raise StatusError(f"cannot read the state: {exc}") from None
    silence = special.get(SILENCES_KEY)
    report = build_report(
        settings, targets, records, now, excluded=excluded, silences=silence.silences if silence else ()
    )
    text = render_text(report, problems_only=problems)
    last = special.get(report_key(settings))
    if settings.daily_report is None:
        footer = "Daily report: off (DAILY_REPORT_AT is empty)"
    else:
        sent = last.reported_on if last and last.reported_on else "never"
        footer = f"Daily report: at {settings.daily_report}; last sent: {sent}"
    return f"{text}\n{footer}\n"
