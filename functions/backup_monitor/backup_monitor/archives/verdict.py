"""What a verification concluded, and the two ways it stops early."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    OK = "ok"
    FAILED = "failed"  # the archive is damaged: a critical incident
    NOT_RUN = "not_run"  # the verification could not run: a warning, said once


@dataclass(frozen=True, slots=True)
class Verdict:
    """The result of one verification; `code` is a stable short name, `detail` a sentence for people."""

    outcome: Outcome
    code: str
    detail: str
    received: int = 0  # archive bytes read
    unpacked: int = 0  # tar bytes after gunzip
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


class ArchiveDamagedError(Exception):
    """The archive fails a check: `code` names which, the message says what was found."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class CannotVerifyError(Exception):
    """The verification cannot go on (refused, too big, stalled, out of time); nothing is known about the archive."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
