"""`backup-monitor silence`, `silences` and `unsilence`: silences from the command line, kept in the state store
(STATE_PATH or STATE_TABLE, as `check` and `status` read it) and honoured by every check."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from backup_monitor.config import ConfigError, Settings
from backup_monitor.silences import (
    KEEP_ENDED,
    MAX_ACTIVE,
    MAX_DURATION,
    Silence,
    SilenceError,
    human_duration,
    new_silence,
    parse_duration,
)
from backup_monitor.state.base import StateError, StateStore
from backup_monitor.variables import BY_NAME

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
COMMANDS = ("silence", "silences", "unsilence")

SILENCE_EXIT_STATUSES = (
    (EXIT_OK, "the silence is stored; its id and end are printed"),
    (EXIT_FAILED, f"the state cannot be read or written, or {MAX_ACTIVE} silences are already active"),
    (EXIT_USAGE, "bad configuration or usage (a duration over 30 days, no reason, a malformed pattern)"),
)
SILENCES_EXIT_STATUSES = (
    (EXIT_OK, "the silences were listed (none is not an error)"),
    (EXIT_FAILED, "the state cannot be read"),
    (EXIT_USAGE, "bad configuration or usage"),
)
UNSILENCE_EXIT_STATUSES = (
    (EXIT_OK, "the silence is ended (or had ended already)"),
    (EXIT_FAILED, "no silence has this id, or the state cannot be read or written"),
    (EXIT_USAGE, "bad configuration or usage"),
)


def _epilog(statuses: Sequence[tuple[int, str]]) -> str:
    lines = ["environment variables:"]
    for name in ("STATE_TABLE", "STATE_PATH"):
        lines.append(f"  {name}")
        lines.extend(f"      {part}" for part in textwrap.wrap(BY_NAME[name].meaning.replace("`", ""), 70))
    lines += ["", "exit status:", *(f"  {code:<4}{meaning}" for code, meaning in statuses)]
    return "\n".join(lines)


def add_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The three commands, on `backup-monitor`'s subparsers."""
    raw = argparse.RawDescriptionHelpFormatter
    silence = subparsers.add_parser(
        "silence",
        help="send nothing about some databases for a while (maintenance); incidents are still tracked",
        description=textwrap.fill(
            "Silence the databases of the apps APP_GLOB names (a glob as EXCLUDE_APPS takes, e.g. billing-*, "
            "optionally REGION/APP_GLOB; or one database's state key REGION/ADDON_ID) for a while. Every check "
            "honours it: no message about them (alerts, reminders, resolutions, successes, download links), "
            "but their incidents are still tracked, and what is still open when the silence ends is announced "
            f"then. At most {MAX_DURATION.days} days; at most {MAX_ACTIVE} active silences.",
            76,
        ),
        epilog=_epilog(SILENCE_EXIT_STATUSES),
        formatter_class=raw,
    )
    silence.add_argument(
        "pattern", metavar="APP_GLOB", help="app glob (billing-*), REGION/APP_GLOB, or REGION/ADDON_ID"
    )
    silence.add_argument("--for", dest="duration", metavar="DURATION", required=True, help="30m, 4h, 2d (at most 30d)")
    silence.add_argument("--reason", required=True, help="why (shown in `silences`, the daily report and status)")
    listing = subparsers.add_parser(
        "silences",
        help="list the active silences",
        description=textwrap.fill(
            "List the active (and future) silences: id, pattern, end (UTC), who set it and why. With --all, "
            f"also those ended in the last {KEEP_ENDED.days} days (expired or removed).",
            76,
        ),
        epilog=_epilog(SILENCES_EXIT_STATUSES),
        formatter_class=raw,
    )
    listing.add_argument(
        "--all", action="store_true", help=f"include the silences ended in the last {KEEP_ENDED.days} days"
    )
    unsilence = subparsers.add_parser(
        "unsilence",
        help="end a silence now",
        description=textwrap.fill(
            "End the silence ID (from `backup-monitor silences`) now: the next check announces what is still "
            "open about its databases.",
            76,
        ),
        epilog=_epilog(UNSILENCE_EXIT_STATUSES),
        formatter_class=raw,
    )
    unsilence.add_argument("silence_id", metavar="ID", help="the silence's id")
    for command in (silence, listing, unsilence):
        command.set_defaults(silence_command=run)  # cli.main() calls it


def who_runs() -> str:
    """`cli:<login>` of whoever runs the command."""
    try:
        login = getpass.getuser()
    except (OSError, KeyError):
        login = ""
    login = "".join(c for c in login if c.isprintable() and not c.isspace())[:60]
    return f"cli:{login or 'unknown'}"


def _settings() -> Settings:
    """The state settings, without requiring an API token (none is used)."""
    env = dict(os.environ)
    sources = ("SCALINGO_API_TOKEN", "SCALINGO_API_TOKEN_PARAMETER", "SCALINGO_API_TOKEN_PARAMETERS")
    if not any(env.get(name, "").strip() for name in sources):
        env["SCALINGO_API_TOKEN_PARAMETER"] = "(unused by silences)"  # noqa: S105  (a name, not a secret)
    return Settings.from_env(env)


def _store(settings: Settings) -> StateStore:
    from backup_monitor.wiring import build_store

    return build_store(settings)


def _no_state_yet(settings: Settings) -> bool:
    return not settings.state_table and not Path(settings.state_path).exists()


def run(args: argparse.Namespace, now: datetime | None = None) -> int:
    """Run `silence`, `silences` or `unsilence` (args from add_parsers' parsers); the exit status."""
    moment = now or datetime.now(UTC)
    try:
        settings = _settings()
        if args.command == "silences":
            return _list(settings, moment, everything=args.all)
        if args.command == "unsilence":
            return _unsilence(settings, args.silence_id, moment)
        return _silence(settings, args.pattern, args.duration, args.reason, moment)
    except ConfigError as exc:
        print(f"backup-monitor: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StateError as exc:
        print(f"backup-monitor: cannot use the state: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _silence(settings: Settings, pattern: str, duration: str, reason: str, now: datetime) -> int:
    from backup_monitor.state.silences import add_silence

    try:
        span = parse_duration(duration)
        new_silence(pattern, span, reason, who_runs(), now)  # usage errors before the store is opened
    except SilenceError as exc:
        print(f"backup-monitor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        silence = add_silence(_store(settings), pattern, span, reason, who_runs(), now)
    except SilenceError as exc:  # too many active silences
        print(f"backup-monitor: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"silence {silence.id}: {silence.pattern} until {_utc(silence.until)} ({human_duration(span)})")
    return EXIT_OK


def _unsilence(settings: Settings, silence_id: str, now: datetime) -> int:
    from backup_monitor.state.silences import UnknownSilenceError, remove_silence

    if _no_state_yet(settings):
        print(f"backup-monitor: no silence has the id {silence_id!r} (no state file yet)", file=sys.stderr)
        return EXIT_FAILED
    try:
        silence = remove_silence(_store(settings), silence_id, who_runs(), now)
    except UnknownSilenceError as exc:
        print(f"backup-monitor: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"silence {silence.id} ({silence.pattern}) ended at {_utc(silence.end)}")
    return EXIT_OK


def _list(settings: Settings, now: datetime, *, everything: bool) -> int:
    from backup_monitor.state.silences import load_silences

    stored = () if _no_state_yet(settings) else load_silences(_store(settings))
    shown = [s for s in stored if everything or s.end > now]
    if not shown:
        print("No active silence." if not everything else "No silence (active or ended in the last 7 days).")
        return EXIT_OK
    print(render_table(shown, now), end="")
    return EXIT_OK


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def state_of(silence: Silence, now: datetime) -> str:
    if silence.is_active(now):
        return f"active, {human_duration(silence.end - now)} left"
    if silence.starts_at > now:
        return "future"
    if silence.ended_at is not None and silence.ended_at < silence.until:
        return f"removed by {silence.ended_by}" if silence.ended_by else "removed"
    return "expired"


def render_table(silences: Sequence[Silence], now: datetime) -> str:
    """One line per silence, in columns."""
    rows = [["ID", "PATTERN", "UNTIL", "STATE", "BY", "REASON"]]
    for s in sorted(silences, key=lambda s: (s.end, s.id)):
        rows.append([s.id, s.pattern, _utc(s.end), state_of(s, now), s.by, s.reason])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])) + "  " + row[-1] for row in rows]
    return "\n".join(line.rstrip() for line in lines) + "\n"
