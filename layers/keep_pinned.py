"""Keeps, of a pip-compile output, the entries of the packages a .in file names (`make lock`).

layers/requirements-no-deps.txt is installed with --no-deps: its packages' own dependencies (botocore, and
what botocore needs) come with the Lambda runtime. pip-compile pins the whole closure; this keeps the named
packages with their hashes, so the file still installs with --require-hashes and pulls in nothing else.

    python layers/keep_pinned.py NAMES.in COMPILED.txt > LOCK.txt
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def names_in(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        match = NAME.match(line.split("#", 1)[0].strip())
        if match:
            names.add(canonical(match.group(1)))
    return names


def keep(names: set[str], compiled: str) -> str:
    """pip-compile's header comment, then each entry (its pin line and the indented lines after it) of a
    named package; the rest (other entries, the closing notes on unpinned packages) is left out."""
    lines = compiled.splitlines()
    header = 0
    while header < len(lines) and lines[header].startswith("#"):
        header += 1
    out = [
        *lines[:header],
        "# Kept by layers/keep_pinned.py: the packages the .in file names, installed with --no-deps.",
    ]
    keeping = False
    for line in lines[header:]:
        match = NAME.match(line)
        if match:
            keeping = canonical(match.group(1)) in names
        elif not line.startswith(" "):
            keeping = False
        if keeping:
            out.append(line)
    missing = names - {canonical(m.group(1)) for line in out if (m := NAME.match(line))}
    if missing:
        raise SystemExit(f"not pinned in the compiled file: {', '.join(sorted(missing))}")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        raise SystemExit(__doc__)
    sys.stdout.write(keep(names_in(Path(argv[1])), Path(argv[2]).read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
