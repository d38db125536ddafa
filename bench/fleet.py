"""The moving world of `bench/bench.py`, and what a run measured.

- `SimClock`: simulated epoch seconds, `scale` times faster than the wall clock.
- `World`: a fleet on the fake Scalingo API. Every database has one daily periodic backup slot (spread over the
  day, and a herd: 30 % of the fleet on one hour); a week of history is seeded, then each slot happens when
  the simulated clock reaches it: a "running" backup appears a little after the hour and ends "done" (about
  1 % "error") when its size says; about 1 % of the slots get no backup at all (missing). One database in
  five has point-in-time recovery, its window advancing with the clock. `Mover` plays the events in a thread
  while a check runs, so the world moves during checks too.
- `Traffic`: the fake's requests on the simulated clock (quota shares, busiest minute, databases read).
- `detection`: the incidents the checks opened against the failures and missed slots that were injected.
"""

from __future__ import annotations

import bisect
import random
import statistics
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

REGION = "osc-fr1"
HERD_SHARE = 0.30  # of the fleet sharing one slot hour
FAILED_SHARE = 0.01  # of the slots whose backup ends in "error"
MISSING_SHARE = 0.01  # of the slots that get no backup at all
PITR_EVERY = 5  # one database in five has point-in-time recovery
HISTORY_DAYS = 7
PITR_LAG_SECONDS = 120.0  # how far the latest restore point trails the clock
MINUTE, HOUR = 60.0, 3600.0


class SimClock:
    """Simulated epoch seconds: `at` when the check starts, then `scale` times faster than the wall clock.

    `reset` moves both origins at once (a reader in another thread never sees a new `at` with an old `real`);
    `hold` stops the clock at `at` (between two checks: the parent's own work takes no simulated time)."""

    def __init__(self, at: float, real: float, scale: float) -> None:
        self.scale = scale
        self._origin: tuple[float, float | None] = (at, real)

    def reset(self, at: float, real: float) -> None:
        self._origin = (at, real)

    def hold(self, at: float) -> None:
        self._origin = (at, None)

    def __call__(self) -> float:
        at, real = self._origin
        return at if real is None else at + (time.time() - real) * self.scale


@dataclass(frozen=True, slots=True)
class Database:
    index: int
    app: str
    addon: str
    slot_hour: int
    size: int  # bytes of a typical backup
    pitr: bool

    @property
    def key(self) -> str:
        """The monitor's state key (`region/addon_id`)."""
        return f"{REGION}/{self.addon}"


@dataclass(slots=True)
class Slot:
    """One daily slot of one database inside the run, and what happens at it."""

    database: Database
    slot: datetime
    outcome: str  # "done", "error" or "missing"
    created_at: datetime  # when the backup appears ("running"); for a missing one, when it would have
    finished_at: datetime  # when it ends "done" or "error"
    size: int
    backup_id: str | None = None
    raw: dict[str, Any] | None = None


def make_fleet(count: int, per_app: int, herd_hour: int, rng: random.Random) -> list[Database]:
    """`count` databases, `per_app` to an app; slot hours spread at random but for the herd on `herd_hour`."""
    herd = set(rng.sample(range(count), round(count * HERD_SHARE)))
    return [
        Database(
            index=i,
            app=f"app-{i // per_app:05d}",
            addon=f"ad-{i:05d}",
            slot_hour=herd_hour if i in herd else rng.randrange(24),
            size=rng.randrange(5_000_000, 2_000_000_000),
            pitr=i % PITR_EVERY == 0,
        )
        for i in range(count)
    ]


def _duration(size: int) -> timedelta:
    """How long a backup runs: a minute plus one for each 120 MB (a 2 GB dump: about 18 minutes)."""
    return timedelta(seconds=60 + size / 2_000_000)


class World:
    """The fleet in the fake, its seeded history, and the slots of the run played as the clock reaches them."""

    def __init__(
        self, fake: Any, databases: Sequence[Database], start: datetime, horizon: timedelta, rng: random.Random
    ) -> None:
        self.fake = fake
        self.databases = list(databases)
        self.start = start
        self.slots: list[Slot] = []
        self._rng = rng
        self._lock = threading.Lock()
        self._events: list[tuple[float, int, str, Slot]] = []
        self._next = 0
        self._plan(horizon)

    def _sized(self, database: Database) -> int:
        return int(database.size * self._rng.uniform(0.97, 1.03))

    def _plan(self, horizon: timedelta) -> None:
        day0 = self.start.replace(hour=0, minute=0, second=0, microsecond=0)
        days = 1 + int(horizon / timedelta(days=1)) + 1
        for db in self.databases:
            for day in range(days):
                slot = day0 + timedelta(days=day, hours=db.slot_hour)
                if slot < self.start or slot > self.start + horizon:
                    continue
                draw = self._rng.random()
                outcome = (
                    "missing" if draw < MISSING_SHARE else "error" if draw < MISSING_SHARE + FAILED_SHARE else "done"
                )
                created = slot + timedelta(seconds=self._rng.uniform(5, 120))
                size = self._sized(db)
                self.slots.append(Slot(db, slot, outcome, created, created + _duration(size), size))
        self.slots.sort(key=lambda s: s.created_at)
        for n, s in enumerate(self.slots):
            if s.outcome != "missing":
                self._events.append((s.created_at.timestamp(), 2 * n, "start", s))
                self._events.append((s.finished_at.timestamp(), 2 * n + 1, "finish", s))
        self._events.sort(key=lambda e: (e[0], e[1]))

    def seed(self) -> None:
        """The databases, a week of daily "done" backups before the start, and the PITR windows."""
        for db in self.databases:
            self.fake.add_database(db.app, db.addon, scheduled_hours=[db.slot_hour])
            today = self.start.replace(hour=db.slot_hour, minute=0, second=0, microsecond=0)
            last = today if today < self.start else today - timedelta(days=1)
            for day in range(HISTORY_DAYS - 1, -1, -1):
                created = last - timedelta(days=day) + timedelta(seconds=30)
                self.fake.add_backup(db.addon, created, "done", size=self._sized(db))
        self.move_pitr(self.start.timestamp())

    def move_pitr(self, now: float) -> None:
        """Every PITR window's latest restore point advances to just behind `now`."""
        moment = datetime.fromtimestamp(now - PITR_LAG_SECONDS, UTC)
        for db in self.databases:
            if db.pitr:
                self.fake.set_recovery_window(db.addon, moment - timedelta(days=7), moment)

    def advance(self, now: float) -> int:
        """Play every event due by `now` (a backup starts, a backup ends); how many were played."""
        played = 0
        with self._lock:
            while self._next < len(self._events) and self._events[self._next][0] <= now:
                _, _, action, slot = self._events[self._next]
                self._next += 1
                played += 1
                if action == "start":
                    slot.raw = self.fake.add_backup(
                        slot.database.addon, slot.created_at, "running", size=None, started_at=slot.created_at
                    )
                    slot.backup_id = str(slot.raw["id"])
                elif slot.raw is not None:
                    # In place, as Scalingo's entry changes; size first, so the entry never reads "done" unsized.
                    if slot.outcome == "done":
                        slot.raw["size"] = slot.size
                    slot.raw["status"] = slot.outcome
        return played


class Mover(threading.Thread):
    """Plays the world's events as the simulated clock reaches them, until stopped."""

    def __init__(self, world: World, clock: SimClock, period: float = 0.02) -> None:
        super().__init__(name="bench-world", daemon=True)
        self.world, self.clock, self.period = world, clock, period
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.period):
            self.world.advance(self.clock())

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)


# -- measuring ----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class CheckTraffic:
    """One check's requests as the fake saw them."""

    main: int = 0  # main-API requests the fake answered (not 429)
    main_429: int = 0
    auth: int = 0
    db: int = 0
    pitr: int = 0
    read: set[str] = field(default_factory=set)  # addon ids whose backups were listed
    last_main: float | None = None  # time.monotonic() of its last main-API request


@dataclass(slots=True)
class Traffic:
    """Every accepted main-API request of a run on the simulated clock, and which databases were read when."""

    main_times: list[float] = field(default_factory=list)
    first_read: dict[str, float] = field(default_factory=dict)  # addon id -> simulated time of its first read

    def take(self, requests: Iterable[Any], at: float, mono: float, scale: float) -> CheckTraffic:
        """Count one check's recorded requests (`at`: its simulated start, `mono`: time.monotonic() then)."""
        out = CheckTraffic()
        for r in requests:
            sim = at + (r.at - mono) * scale
            if r.api == "main":
                out.last_main = r.at if out.last_main is None else max(out.last_main, r.at)
                if r.status == 429:
                    out.main_429 += 1
                else:
                    out.main += 1
                    self.main_times.append(sim)
            elif r.api == "auth":
                out.auth += 1
            elif r.api == "db":
                out.db += 1
                parts = r.path.strip("/").split("/")
                if parts[-2:] == ["pitr", "recovery_window"]:
                    out.pitr += 1
                elif len(parts) == 4 and parts[3] == "backups" and r.status == 200:
                    out.read.add(parts[2])
                    self.first_read.setdefault(parts[2], sim)
        return out

    def between(self, start: float, end: float) -> list[float]:
        self.main_times.sort()
        return self.main_times[bisect.bisect_left(self.main_times, start) : bisect.bisect_left(self.main_times, end)]

    def busiest_minute(self, start: float, end: float) -> int:
        """The most main-API requests in any 60 simulated seconds (sliding) in [start, end)."""
        times, best, lo = self.between(start, end), 0, 0
        for hi, t in enumerate(times):
            while t - times[lo] >= MINUTE:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    def hourly(self, start: float, end: float) -> list[int]:
        """Main-API requests in each simulated hour from `start` (the last hour may be partial)."""
        counts = [0] * max(1, int((end - start + HOUR - 1) // HOUR))
        for t in self.between(start, end):
            counts[int((t - start) // HOUR)] += 1
        return counts


@dataclass(frozen=True, slots=True)
class Opened:
    """An incident a check wrote, as read back from the record."""

    key: str
    incident: str
    kind: str
    opened_at: datetime
    slot: datetime | None
    backup_id: str | None


@dataclass(slots=True)
class Detection:
    kind: str  # "failed" or "missing"
    injected: int = 0  # slots begun inside the run with this outcome
    judged: int = 0  # of them, on a database already read before the slot, with an hour to spare at the end
    detected: int = 0  # of the judged ones
    delays_min: list[float] = field(default_factory=list)  # minutes, of the judged detected ones
    undetected: list[tuple[str, datetime]] = field(default_factory=list)  # (addon, slot) of the judged, missed
    too_late: int = 0  # its detection was due less than an hour before the end of the run
    # The database was first read only after the slot (the cold start): how many, how many opened, how late.
    unknown_db: int = 0
    unknown_delays_min: list[float] = field(default_factory=list)

    def p50(self) -> float | None:
        return statistics.median(self.delays_min) if self.delays_min else None

    def worst(self) -> float | None:
        return max(self.delays_min) if self.delays_min else None


def detection(
    slots: Sequence[Slot], opened: Iterable[Opened], traffic: Traffic, grace_hours: float, end: float
) -> tuple[Detection, Detection, list[Opened], list[Opened]]:
    """Failed and missing backups: how many were found, and how late. A failed backup's delay runs from its
    `created_at` to when its incident opened; a missing one's from the slot plus the grace. Also the "missing"
    incidents opened for the slot of a failed backup (a second page for it), and the incidents opened that
    answer no injected event."""
    by_key: dict[str, list[Opened]] = {}
    for o in opened:
        by_key.setdefault(o.key, []).append(o)
    used: set[Opened] = set()
    failed, missing = Detection("failed"), Detection("missing")
    grace = timedelta(hours=grace_hours)
    for s in slots:
        if s.outcome == "done" or s.created_at.timestamp() > end:
            continue
        result = failed if s.outcome == "error" else missing
        result.injected += 1
        origin = s.created_at if s.outcome == "error" else s.slot + grace
        match = _match(s, by_key.get(s.database.key, []), grace)
        if match is not None:
            used.add(match)
        delay = None if match is None else (match.opened_at - origin).total_seconds() / 60
        first = traffic.first_read.get(s.database.addon)
        if first is None or first > s.slot.timestamp():
            result.unknown_db += 1
            if delay is not None:
                result.unknown_delays_min.append(delay)
        elif delay is not None:
            result.judged += 1
            result.detected += 1
            result.delays_min.append(delay)
        elif (s.finished_at if s.outcome == "error" else s.slot + grace).timestamp() + HOUR > end:
            result.too_late += 1
        else:
            result.judged += 1
            result.undetected.append((s.database.addon, s.slot))
    failed_slots = {(s.database.key, s.slot) for s in slots if s.outcome == "error"}
    others = sorted((o for group in by_key.values() for o in group if o not in used), key=lambda o: o.opened_at)
    follow_ups = [o for o in others if o.kind == "missing" and (o.key, o.slot) in failed_slots]
    return failed, missing, follow_ups, [o for o in others if o not in follow_ups]


def _match(s: Slot, candidates: Sequence[Opened], grace: timedelta) -> Opened | None:
    if s.outcome == "error":
        hits = [o for o in candidates if o.kind == "failed" and o.backup_id == s.backup_id]
    else:
        hits = [
            o
            for o in candidates
            if o.kind == "missing"
            and (
                abs((o.slot - s.slot).total_seconds()) < MINUTE
                if o.slot is not None
                else s.slot + grace <= o.opened_at < s.slot + timedelta(days=1)
            )
        ]
    return min(hits, key=lambda o: o.opened_at) if hits else None
