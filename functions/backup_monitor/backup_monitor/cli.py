"""The `backup-monitor` command: `check` (one check) and `demo` (the offline story)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from backup_monitor import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backup-monitor",
        description="Watch Scalingo database backups and tell on-call when one failed, is missing, "
        "hangs or looks truncated. Configured by environment variables (see the README).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = sub.add_parser("check", help="run one check of every monitored database")
    check.add_argument("--dry-run", action="store_true", help="print the messages, send nothing, change no state")
    sub.add_parser("demo", help="the whole story offline, against a local fake Scalingo API")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    print(f"backup-monitor: '{args.command}' is not available yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
