"""Silences (pure): "say nothing about these databases until then", set from the command line or a Slack button.

A silence names apps by a glob (as EXCLUDE_APPS does, `fnmatchcase`), optionally in one region
(`osc-fr1/billing-*`), or one database by its exact state key (`osc-fr1/ad-123`, what a button sets). While one
is active, a check sends nothing about the databases it covers; their incidents are still tracked, and what is
still open when it ends is announced then (rules.muted / rules.after_silence). No clock, no I/O here: the
store's side is state/silences.py.
"""

from __future__ import annotations

import fnmatch
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from backup_monitor.config import Target

MAX_DURATION = timedelta(days=30)
# The whole list is one state record (one DynamoDB item, 400 KB at most): 300 active and 50 ended silences with
# the longest fields make about 250 KB of JSON (tests/unit/test_silences.py checks).
MAX_ACTIVE = 300
# Ended silences (expired or removed) are kept this long, for `backup-monitor silences --all` and the daily
# report's "ended" line; then dropped at the next write. At most MAX_ENDED_KEPT of them (the most recent).
KEEP_ENDED = timedelta(days=7)
MAX_ENDED_KEPT = 50
MAX_PATTERN = 200
MAX_REASON = 200
MAX_BY = 100
ID_HEX = 8

_DURATION = re.compile(r"^\s*(\d+)\s*([mhd])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
_REGION = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,20}$")


class SilenceError(ValueError):
    """A silence that cannot be set: a bad duration, pattern or reason, or too many active ones."""


@dataclass(frozen=True, slots=True)
class Silence:
    """No message about the databases `pattern` covers from `starts_at` until `until` (or `ended_at`, when
    removed earlier). `by`: a Slack user id (`U123`) or `cli:<login>`."""

    id: str
    pattern: str
    starts_at: datetime
    until: datetime
    reason: str
    by: str
    created_at: datetime
    ended_at: datetime | None = None  # removed (unsilence) before `until`
    ended_by: str = ""

    @property
    def end(self) -> datetime:
        """When it stops (or stopped) silencing."""
        return min(self.until, self.ended_at) if self.ended_at is not None else self.until

    def is_active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.end

    def covers(self, target: Target) -> bool:
        """Whether `target` is one of the databases this silence names (active or not)."""
        return matches(self.pattern, target)


def matches(pattern: str, target: Target) -> bool:
    """`pattern`: the database's exact state key, or an app glob, optionally after `region/`."""
    if pattern == target.key:
        return True
    region, sep, glob = pattern.partition("/")
    if not sep:
        return fnmatch.fnmatchcase(target.app, pattern)
    return region == target.region and fnmatch.fnmatchcase(target.app, glob)


def active(silences: Iterable[Silence], target: Target, now: datetime) -> Silence | None:
    """The active silence covering `target` that ends last, or None."""
    found = [s for s in silences if s.is_active(now) and s.covers(target)]
    return max(found, key=lambda s: (s.end, s.id)) if found else None


def parse_duration(text: str) -> timedelta:
    """`30m`, `4h`, `2d`: at least a minute, at most MAX_DURATION (SilenceError otherwise)."""
    found = _DURATION.match(text)
    if found is None:
        raise SilenceError(f"cannot read the duration {text!r}: write a number then m, h or d (30m, 4h, 2d)")
    number, unit = int(found.group(1)), found.group(2)
    if number <= 0:
        raise SilenceError(f"the duration {text!r} must be longer than nothing")
    span = timedelta(**{_UNITS[unit]: number})
    if span > MAX_DURATION:
        raise SilenceError(f"a silence lasts at most {MAX_DURATION.days} days ({text!r} is longer)")
    return span


def human_duration(span: timedelta) -> str:
    """`4 h`, `2 d 3 h`, `45 min`."""
    minutes = int(span.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    text = f"{hours // 24} d {hours % 24} h" if hours >= 48 else f"{hours} h"
    return text.replace(" 0 h", "") + (f" {rest} min" if rest and hours < 48 else "")


def check_pattern(pattern: str) -> str:
    """The pattern, stripped; SilenceError when it cannot name anything."""
    text = pattern.strip()
    if not text or any(c.isspace() for c in text) or len(text) > MAX_PATTERN:
        raise SilenceError(f"the pattern must be an app glob of at most {MAX_PATTERN} characters, without spaces")
    region, sep, rest = text.partition("/")
    if sep and (not _REGION.match(region) or not rest or "/" in rest):
        raise SilenceError(f"cannot read the pattern {text!r}: write APP_GLOB or REGION/APP_GLOB (osc-fr1/billing-*)")
    return text


def check_by(by: str) -> str:
    """Who sets or ends a silence: a Slack user id or `cli:<login>`."""
    text = by.strip()
    if not text or len(text) > MAX_BY or any(c.isspace() or not c.isprintable() for c in text):
        raise SilenceError("who sets the silence must be a Slack user id or cli:<login>")
    return text


def new_silence(
    pattern: str, duration: timedelta, reason: str, by: str, now: datetime, *, silence_id: str | None = None
) -> Silence:
    """A silence starting now; SilenceError naming what is wrong."""
    if duration <= timedelta(0) or duration > MAX_DURATION:
        raise SilenceError(f"a silence lasts more than nothing and at most {MAX_DURATION.days} days")
    why = " ".join(reason.split())
    if not why:
        raise SilenceError("a reason is required (--reason): whoever sees the silence must know why")
    if len(why) > MAX_REASON:
        raise SilenceError(f"the reason is at most {MAX_REASON} characters")
    return Silence(
        id=silence_id or secrets.token_hex(ID_HEX // 2),
        pattern=check_pattern(pattern),
        starts_at=now,
        until=now + duration,
        reason=why,
        by=check_by(by),
        created_at=now,
    )


def added(silences: Sequence[Silence], silence: Silence, now: datetime) -> tuple[Silence, ...]:
    """`silences` with `silence`, pruned; SilenceError past MAX_ACTIVE active ones."""
    kept = pruned(silences, now)
    if sum(1 for s in kept if s.is_active(now)) >= MAX_ACTIVE:
        raise SilenceError(
            f"there are already {MAX_ACTIVE} active silences, the most one can hold: remove some "
            "(backup-monitor unsilence ID) or use a wider pattern"
        )
    if any(s.id == silence.id for s in kept):
        raise SilenceError(f"a silence {silence.id} exists already")
    return (*kept, silence)


def ended(silences: Sequence[Silence], silence_id: str, by: str, now: datetime) -> tuple[tuple[Silence, ...], Silence]:
    """`silences` with the one of `silence_id` ended now (kept as ended), and it; KeyError when none has that id
    (an ended one is ended again: nothing changes)."""
    found = next((s for s in silences if s.id == silence_id), None)
    if found is None:
        raise KeyError(silence_id)
    if not found.is_active(now) and found.starts_at <= now:
        return pruned(silences, now), found
    stop = replace(found, ended_at=now, ended_by=check_by(by))
    return pruned([stop if s.id == silence_id else s for s in silences], now), stop


def pruned(silences: Iterable[Silence], now: datetime) -> tuple[Silence, ...]:
    """Active and future silences, then the ended ones of the last KEEP_ENDED (at most MAX_ENDED_KEPT)."""
    ordered = sorted(silences, key=lambda s: (s.created_at, s.id))
    live = [s for s in ordered if s.end > now]
    gone = [s for s in ordered if s.end <= now and now - s.end <= KEEP_ENDED]
    gone = sorted(gone, key=lambda s: (s.end, s.id))[-MAX_ENDED_KEPT:]
    return tuple(sorted([*live, *gone], key=lambda s: (s.created_at, s.id)))


def slack_who(by: str) -> str:
    """Who, for Slack mrkdwn: a user id becomes a mention (`<@U123>`), anything else is escaped text."""
    if _SLACK_USER.match(by):
        return f"<@{by}>"
    return by.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- JSON ---------------------------------------------------------------------------------------------------------


def silence_to_json(silence: Silence) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": silence.id,
        "pattern": silence.pattern,
        "starts_at": silence.starts_at.isoformat(),
        "until": silence.until.isoformat(),
        "reason": silence.reason,
        "by": silence.by,
        "created_at": silence.created_at.isoformat(),
    }
    if silence.ended_at is not None:
        data["ended_at"] = silence.ended_at.isoformat()
        data["ended_by"] = silence.ended_by
    return data


def _when(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError("not a time")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("a time without its zone")
    return moment


def silence_from_json(data: Any) -> Silence:
    """The inverse of silence_to_json (ValueError, TypeError or KeyError on a malformed entry)."""
    if not isinstance(data, dict):
        raise TypeError("a silence is a JSON object")
    ended_at = data.get("ended_at")
    return Silence(
        id=str(data["id"]),
        pattern=str(data["pattern"]),
        starts_at=_when(data["starts_at"]),
        until=_when(data["until"]),
        reason=str(data.get("reason") or ""),
        by=str(data.get("by") or ""),
        created_at=_when(data.get("created_at") or data["starts_at"]),
        ended_at=_when(ended_at) if ended_at is not None else None,
        ended_by=str(data.get("ended_by") or ""),
    )


def silences_to_json(silences: Iterable[Silence]) -> list[dict[str, Any]]:
    return [silence_to_json(s) for s in silences]


def silences_from_json(raw: Any) -> tuple[Silence, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise TypeError("the silences are a JSON list")
    return tuple(silence_from_json(item) for item in raw)
