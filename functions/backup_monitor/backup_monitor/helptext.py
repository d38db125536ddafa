"""`--help` texts of the commands: descriptions wrapped, and an epilog listing the variables a command reads
(from variables.VARIABLES) and its exit statuses."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from backup_monitor.variables import for_command

WIDTH = 76


def wrapped(text: str) -> str:
    return textwrap.fill(text, WIDTH, break_on_hyphens=False)


def exit_statuses(statuses: Sequence[tuple[int, str]]) -> str:
    lines = ["exit status:"]
    for code, meaning in statuses:
        parts = textwrap.wrap(meaning, WIDTH - 6, break_on_hyphens=False) or [""]
        lines.append(f"  {code:<4}{parts[0]}")
        lines.extend(f"      {part}" for part in parts[1:])
    return "\n".join(lines)


def epilog(command: str, statuses: Sequence[tuple[int, str]]) -> str:
    """The variables `command` reads and its exit statuses."""
    lines = ["environment variables (all of them, with ranges: docs/configuration.md):"]
    for variable in for_command(command):
        facts = [f"default: {variable.default.replace('`', '')}"] if variable.default not in ("none", "empty") else []
        if variable.range_text:
            facts.append(variable.range_text)
        text = variable.meaning.replace("`", "") + (f" ({'; '.join(facts)})" if facts else "")
        lines.append(f"  {variable.name}")
        lines.extend(f"      {part}" for part in textwrap.wrap(text, WIDTH - 6, break_on_hyphens=False))
    return "\n".join(lines) + "\n\n" + exit_statuses(statuses)
