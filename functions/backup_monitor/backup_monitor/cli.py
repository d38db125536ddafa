"""The `backup-monitor` command: `check` (one check), `status` (the report from the state) and `demo`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from backup_monitor import __version__
from backup_monitor.config import ConfigError, Settings, UnknownShardError, log_level
from backup_monitor.helptext import epilog, wrapped
from backup_monitor.variables import CHECK, STATUS

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_BUSY = 75  # EX_TEMPFAIL (sysexits.h): another check holds the state's lock; nothing was done, try later
_EXTRA_FIELDS = ("target", "error", "call", "count", "permanent", "kind")


class _PlainFormatter(logging.Formatter):
    """`backup-monitor: warning: message (key=value …)` with the structured fields a log call passed."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={getattr(record, k)}" for k in _EXTRA_FIELDS if hasattr(record, k))
        return f"backup-monitor: {record.levelname.lower()}: {record.getMessage()}" + (f" ({fields})" if fields else "")


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_PlainFormatter())
    root = logging.getLogger("backup_monitor")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _configuration_error(exc: ConfigError) -> int:
    print(f"backup-monitor: configuration error: {exc}", file=sys.stderr)
    return EXIT_USAGE


CHECK_EXIT_STATUSES = (
    (EXIT_OK, "every due database read and every message delivered"),
    (EXIT_FAILED, "a database could not be read, a message was not delivered, or no due database was reached"),
    (EXIT_USAGE, "bad configuration or usage (one line names the variable), nothing contacted"),
    (EXIT_BUSY, "another check holds the SQLite state's lock (STATE_PATH.lock): this one did nothing"),
    (130, "interrupted by Ctrl-C (143: SIGTERM); what was delivered is saved"),
)
STATUS_EXIT_STATUSES = (
    (EXIT_OK, "the report was printed"),
    (EXIT_FAILED, "no state yet, or the state cannot be read"),
    (EXIT_USAGE, "bad configuration or usage"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backup-monitor",
        description="Watch Scalingo database backups and tell on-call in Slack when one failed, is missing, "
        "hangs or looks truncated. Configured by environment variables: `backup-monitor COMMAND --help` lists "
        "each command's.",
        epilog="exit status: 0 all checked and delivered, 1 something unchecked or undelivered, "
        "2 bad configuration or usage",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    raw = argparse.RawDescriptionHelpFormatter
    check = sub.add_parser(
        "check",
        help="run one check of every monitored database",
        description=wrapped(
            "Read the backups of the databases due for a read, compare them with what the state "
            "remembers, and tell Slack (or print) what changed: failed, missing, stuck or truncated backups, periodic "
            "backups switched off, and what recovered. Without any Slack setting, messages go to standard output. "
            "On a terminal, a progress line on standard error."
        ),
        epilog=epilog(CHECK, CHECK_EXIT_STATUSES),
        formatter_class=raw,
    )
    check.add_argument("--dry-run", action="store_true", help="print the messages, send nothing, change no state")
    check.add_argument(
        "--json",
        action="store_true",
        help="print each message as the exact Slack payload, one JSON object per line (with --dry-run, or when "
        "no Slack destination is configured)",
    )
    check.add_argument(
        "--show-links", action="store_true", help="print download links whole (their token is hidden by default)"
    )
    shard_help = "with SCALINGO_API_TOKEN_PARAMETERS: only this shard (its id or parameter name; default: each in turn)"
    check.add_argument("--shard", metavar="ID", help=shard_help)
    sub.add_parser(
        "demo",
        help="the whole story offline, against a local fake Scalingo API",
        description=wrapped(
            "Runs a local fake Scalingo API on loopback and checks it a dozen times while its backups "
            "fail, go missing, hang and recover; the messages are printed. Reads no variable, contacts nothing else, "
            "leaves no state behind."
        ),
        epilog="exit status:\n  0   the story ran to its end\n  1   a step did not give what it should",
        formatter_class=raw,
    )
    status_parser = sub.add_parser(
        "status",
        help="print the daily report from the state alone (no API call, nothing sent)",
        description=wrapped(
            "Print the daily report and one line per database from the state alone: no Scalingo call, "
            "nothing sent, nothing changed. Reads the same state as `check` (STATE_PATH or STATE_TABLE)."
        ),
        epilog=epilog(STATUS, STATUS_EXIT_STATUSES),
        formatter_class=raw,
    )
    status_parser.add_argument(
        "--problems", action="store_true", help="list only the databases with an open incident (every one of them)"
    )
    status_parser.add_argument("--shard", metavar="ID", help=shard_help)
    from backup_monitor.deploy_secrets import add_parser as add_secrets_parser

    add_secrets_parser(sub)
    from backup_monitor.silence_cli import add_parsers as add_silence_parsers

    add_silence_parsers(sub)
    from backup_monitor.serve import add_parser as add_serve_parser

    add_serve_parser(sub)
    return parser


def shard_settings(settings: Settings, shard: str | None) -> list[Settings]:
    """The settings of each check to run: the one shard named, every shard in turn, or (one token) these."""
    if shard is not None:
        return [settings.for_shard(shard)]
    if settings.api_token_parameters:
        return [settings.for_shard(s) for s in settings.shards]
    return [settings]


def check(dry_run: bool, json_lines: bool = False, show_links: bool = False, shard: str | None = None) -> int:
    """One check with the environment's configuration (with shards: each shard's, in turn, or the one named)."""
    from contextlib import ExitStack

    from backup_monitor.monitor import Clients, run_check
    from backup_monitor.notifiers import ConsoleNotifier
    from backup_monitor.progress import terminal_progress
    from backup_monitor.state.sqlite import CheckRunningError, check_locks
    from backup_monitor.wiring import build_clients, build_store, resolve_secrets

    with ExitStack() as held:
        try:
            checks = shard_settings(Settings.from_env(os.environ), shard)
            # a state file that cannot be written is a bad STATE_PATH: said before SSM; every secret before a check
            stores = [build_store(settings) for settings in checks]
            held.enter_context(check_locks(stores))  # one check at a time per state file (before SSM too)
            prepared: list[tuple[Settings, Clients]] = []
            for settings, store in zip(checks, stores, strict=True):
                resolved = resolve_secrets(settings)
                prepared.append((resolved, build_clients(resolved, dry_run=dry_run, store=store)))
        except ConfigError as exc:
            return _configuration_error(exc)
        except UnknownShardError as exc:
            print(f"backup-monitor: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except CheckRunningError as exc:
            print(f"backup-monitor: {exc}", file=sys.stderr)
            return EXIT_BUSY
        worst = EXIT_OK
        prefix = "dry run: " if dry_run else ""
        with _Interrupts() as interrupts:
            for settings, clients in prepared:
                if interrupts.stop.is_set():
                    break
                # on a terminal, a progress line on standard error (logs and console messages erase it first)
                with terminal_progress(sys.stderr, logging.getLogger("backup_monitor")) as (progress, stdout):
                    if isinstance(clients.notifier, ConsoleNotifier):
                        clients.notifier = ConsoleNotifier(stdout, json_lines=json_lines, show_links=show_links)
                    summary = run_check(
                        settings, clients, datetime.now(UTC), dry_run=dry_run, stop=interrupts.stop, progress=progress
                    )
                of = f"shard {settings.shard}: " if settings.shard else ""
                print(f"backup-monitor: {prefix}{of}{summary.line()}", file=sys.stderr)
                worst = max(worst, summary.exit_code)
    if interrupts.signal is not None:
        return 128 + interrupts.signal  # 130 for Ctrl-C (SIGINT), 143 for SIGTERM, as shells expect
    return worst


class _Interrupts:
    """Ctrl-C or SIGTERM asks the check to stop (no new database, no new message; what was delivered is saved,
    tokens too); a second one stops at once."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.signal = signum
        self.stop.set()

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def status(problems: bool = False, shard: str | None = None) -> int:
    """The daily report and one line per database, from the state alone (no API call, no Slack); with shards,
    each shard's report in turn (or the one named)."""
    from backup_monitor.status import StatusError, read_status

    env = dict(os.environ)
    sources = ("SCALINGO_API_TOKEN", "SCALINGO_API_TOKEN_PARAMETER", "SCALINGO_API_TOKEN_PARAMETERS")
    if not any(env.get(name, "").strip() for name in sources):
        env["SCALINGO_API_TOKEN_PARAMETER"] = "(unused by status)"  # noqa: S105  (a name, not a secret: never read)
    try:
        reports = shard_settings(Settings.from_env(env), shard)
    except ConfigError as exc:
        return _configuration_error(exc)
    except UnknownShardError as exc:
        print(f"backup-monitor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    code = EXIT_OK
    for i, settings in enumerate(reports):
        try:
            text = read_status(settings, datetime.now(UTC), problems=problems)
        except ConfigError as exc:
            return _configuration_error(exc)
        except StatusError as exc:
            of = f"shard {settings.shard}: " if settings.shard else ""
            print(f"backup-monitor: {of}{exc}", file=sys.stderr)
            code = EXIT_FAILED
            continue
        print(("\n" if i else "") + text, end="")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        _setup_logging(log_level(os.environ))
    except ConfigError as exc:
        return _configuration_error(exc)
    if args.command == "demo":
        from backup_monitor.demo import run_demo

        return run_demo()
    if args.command == "status":
        return status(args.problems, args.shard)
    if args.command == "secrets":
        from backup_monitor.deploy_secrets import run as run_secrets

        return run_secrets(args)
    if args.command == "serve":
        from backup_monitor.serve import main as serve

        return serve(args)
    if getattr(args, "silence_command", None) is not None:  # silence, silences, unsilence (silence_cli.py)
        return int(args.silence_command(args))
    return check(args.dry_run, args.json, args.show_links, args.shard)


if __name__ == "__main__":
    sys.exit(main())
