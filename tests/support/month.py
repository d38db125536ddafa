"""A month in production, simulated: a fleet of Scalingo databases over 30 days, checked every hour by the real
check (`run_check`) over real HTTP against the fake Scalingo API and the fake Slack, with a real SQLite state.

Scalingo behaves as it does in production, generated from a seeded random (so every run is the same month):
one periodic backup a day per database at its slot hour (`created_at` at the slot, `scheduled`, then `running`
after a queue delay of up to 150 minutes, then `done`), sizes drifting slowly, retention pruning the oldest
(7 periodic and 5 manual kept), manual backups now and then (a few cancelled by their user), two regions.

Into that month go real problems, each of which must page on-call once (`SLACK_MENTION`), and noise that must
never page. `run_month` plays the month and keeps every message Slack accepted with the simulated time of the
check that sent it; the functions at the end judge that log (`false_pages`, `missed_outages`,
`announced_twice`, `deletions_not_said_once`) and `figures` gives the numbers to quote.

The simulated clock is passed in: each check gets its `now`, the fake Scalingo API and the client's token cache
read the same clock. Nothing of the product is patched. Slack's pacing (1.05 real seconds between two posts,
a real-time limit that simulated hours make meaningless) is set to 0 on the notifier instance through its
`pace_seconds` attribute, the one the outbox reads; the fake Slack enforces no rate either.
"""

from __future__ import annotations

import json
import random
import re
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from backup_monitor.config import Settings
from backup_monitor.fakes.scalingo import FakeScalingo, iso
from backup_monitor.messages import title
from backup_monitor.monitor import Clients, run_check
from backup_monitor.notifiers import WebhookNotifier
from backup_monitor.rules import Kind, Notice, Phase
from backup_monitor.scalingo.client import ScalingoClient, build_session
from backup_monitor.state.sqlite import SqliteStateStore
from tests.fakes.slack import FakeSlack
from tests.support.processes import scalingo_env

SEED = 20261101
MONTH_START = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 30
CHECK_MINUTE = 7  # the schedule's rate(60 minutes) fires at :07
CHECK_PERIOD = timedelta(hours=1)
MENTION = "<!here>"
GRACE = timedelta(hours=3)  # MISSING_BACKUP_GRACE_HOURS (the default)
STUCK = timedelta(hours=6)  # STUCK_BACKUP_HOURS (the default)
PITR_MAX_LAG = timedelta(hours=6)  # PITR_MAX_LAG_HOURS (the default)
DISCOVERY_EVERY = timedelta(hours=6)  # DISCOVERY_EVERY_HOURS (the default)
HISTORY_DAYS = 8  # periodic backups before the month starts (retention keeps 7 of them)
KEEP_PERIODIC = 7
KEEP_MANUAL = 5
REGIONS = ("osc-fr1", "osc-secnum-fr1")
PROVIDERS = ("postgresql", "mysql", "mongodb", "redis")
FLEET = 30
GB = 1_000_000_000

# The settings of the month: the defaults, except what the brief and a fast simulation need.
ENV = {
    "SCALINGO_REGIONS": ",".join(REGIONS),
    "SCALINGO_API_RATE_LIMIT": "60000",  # real seconds: the limiter's minute does not pass in a simulated hour
    "SLACK_MENTION": MENTION,
    "VERIFY_ARCHIVES_EVERY_DAYS": "0",  # archive verification has its own tests (the fake serves no archives)
    "DOWNLOAD_LINKS": "false",  # one request less per success; links have their own tests
    "SWEEP_EVERY_HOURS": "6",  # the default cadence: a database is read when it can have news (issue 18)
}


def day(n: int, hour: int = 0, minute: int = 0) -> datetime:
    """Day `n` of the month (1 = 1 November) at hour:minute UTC."""
    return MONTH_START + timedelta(days=n - 1, hours=hour, minutes=minute)


def check_at(moment: datetime) -> datetime:
    """The first check at or after `moment`."""
    first = moment.replace(minute=CHECK_MINUTE, second=0, microsecond=0)
    return first if first >= moment else first + CHECK_PERIOD


# -- the fleet and the month's story ------------------------------------------------------------------------


@dataclass
class Db:
    """One database of the fleet, as planned."""

    addon_id: str
    app: str
    region: str
    provider: str
    resource_id: str
    slot_hour: int
    created_at: datetime
    size: float  # bytes of its periodic backup at the start of the month
    periodic: bool = True  # periodic backups enabled at the start
    role: str = "healthy"


@dataclass
class Problem:
    """A real problem: exactly one page for its database, in time (`deadline`)."""

    what: str
    addon_id: str
    injected_at: datetime  # from then on a page for this database is about this problem
    onset: datetime  # when a careful monitor can know (the slot, the failure, 6 h behind...)
    resolved_at: datetime | None = None  # None: still there at the end of the month
    # False: a warning (periodic backups switched off), announced once in time without calling anyone.
    page: bool = True

    @property
    def deadline(self) -> datetime:
        return self.onset + GRACE + CHECK_PERIOD

    def covers(self, moment: datetime) -> bool:
        end = self.resolved_at + CHECK_PERIOD if self.resolved_at is not None else None
        return moment >= self.injected_at and (end is None or moment <= end)


@dataclass
class Noise:
    """Something that must never page."""

    what: str
    addon_id: str
    at: datetime


@dataclass
class Event:
    """A change to the world, applied before the first check at or after `at`."""

    at: datetime
    what: str
    action: Callable[[], None]


@dataclass
class BackupLife:
    """One backup's life on Scalingo; `entry` is the fake's dict once it is listed."""

    addon_id: str
    created_at: datetime
    method: str
    start_at: datetime | None  # None: never starts
    end_at: datetime | None  # None: never ends
    final: str  # "done", "error" or "cancelled"
    size: int
    cancel_at: datetime | None = None  # the user cancels it: `cancelling` from then until `end_at`
    entry: dict[str, Any] | None = None
    pruned: bool = False

    def status_at(self, moment: datetime) -> str:
        if self.start_at is None or moment < self.start_at:
            return "scheduled" if self.method == "periodic" else "pending"
        if self.end_at is not None and moment >= self.end_at:
            return self.final
        if self.cancel_at is not None and moment >= self.cancel_at:
            return "cancelling"
        return "running"


class World:
    """The fake Scalingo API's contents at any simulated moment: the fleet, its backups, the story's events."""

    def __init__(self, fake: FakeScalingo, seed: int = SEED) -> None:
        self.fake = fake
        self.rng = random.Random(seed)
        self.dbs: dict[str, Db] = {}
        self.present: set[str] = set()
        self.lives: dict[str, list[BackupLife]] = {}
        self.events: list[Event] = []
        self.problems: list[Problem] = []
        self.noise: list[Noise] = []
        self.deleted: dict[str, datetime] = {}
        self.names: dict[str, str] = {}  # every app name and resource id ever used -> addon id
        self.renamed: dict[str, tuple[str, str]] = {}  # addon id -> (old app, new app)
        self.discovered_at: datetime | None = None  # the last check that listed the apps
        self.delete_at_discovery: tuple[str, datetime] | None = None
        self.deleted_before_discovery: datetime | None = None  # the check after that deletion
        self.discovery_missed_deletion = False  # that check did not list the apps after all
        self.recovery_window: Callable[..., None] | None = getattr(fake, "set_recovery_window", None)
        self.pitr_addon: str | None = None
        self.pitr_lag: tuple[datetime, datetime] | None = None
        self._drift: dict[str, list[float]] = {}
        self._plan()

    # -- the plan ----------------------------------------------------------------------------------------

    def _db(self, i: int, role: str) -> Db:
        rng = self.rng
        region = REGIONS[1] if i % 3 == 2 else REGIONS[0]
        app = f"{('shop', 'crm', 'blog', 'billing', 'search', 'media')[i % 6]}-{i:02d}"
        slot_hour = 0 if rng.random() < 0.4 else rng.randrange(24)  # Scalingo's default: 01:00 CET
        size = 10 ** rng.uniform(7.3, 9.7)  # 20 MB to 5 GB
        db = Db(
            addon_id=f"ad-{i:02d}-{rng.getrandbits(32):08x}",
            app=app,
            region=region,
            provider=PROVIDERS[i % len(PROVIDERS)],
            resource_id=f"{app}-{rng.getrandbits(16):04x}",
            slot_hour=slot_hour,
            created_at=MONTH_START - timedelta(days=rng.randrange(60, 900)),
            size=size,
            role=role,
        )
        self.dbs[db.addon_id] = db
        self.names[db.app] = db.addon_id
        self.names[db.resource_id] = db.addon_id
        return db

    def _plan(self) -> None:
        roles = [
            "failed",
            "skipped",
            "periodic off",
            "stuck",
            "never any backup",
            "pitr",
            "failed then renamed",
            "decommissioned",
            "deleted between discoveries",
            "short answer",
            "empty answer",
            "500",
            "404",
            "renamed",
        ]
        dbs = [self._db(i, roles[i] if i < len(roles) else "healthy") for i in range(FLEET)]
        by_role = {db.role: db for db in dbs}
        never = by_role["never any backup"]
        never.created_at = day(3, 10, 15)
        pitr = by_role["pitr"]
        pitr.provider = "postgresql"
        if self.recovery_window is not None:  # periodic dumps off: point-in-time recovery is its backup
            pitr.periodic = False
            self.pitr_addon = pitr.addon_id

        # Sizes drift slowly: a few tenths of a percent a day.
        for db in dbs:
            drift = [1.0]
            for _ in range(HISTORY_DAYS + DAYS + 1):
                drift.append(drift[-1] * (1 + self.rng.gauss(0.002, 0.008)))
            self._drift[db.addon_id] = drift

        # Seed the databases that exist at the start; the new one appears on day 3.
        for db in dbs:
            if db.created_at <= MONTH_START:
                self._create(db)
            else:
                self.events.append(Event(db.created_at, f"{db.app} created", partial(self._create, db)))

        # Real problems (each must page once).
        failed = by_role["failed"]
        self._periodic(failed, fail_on=day(5, failed.slot_hour))
        skipped = by_role["skipped"]
        self._periodic(skipped, skip=day(8, skipped.slot_hour))
        off = by_role["periodic off"]
        off_at, on_at = day(11, 13, 20), day(14, 9, 40)
        self._periodic(off, off=(off_at, on_at))
        stuck = by_role["stuck"]
        self._periodic(stuck, stuck_on=day(17, stuck.slot_hour))
        self._periodic(never, never=True)
        self.problems.append(Problem("never any backup", never.addon_id, never.created_at, self._slot_after(never)))
        renamed_failing = by_role["failed then renamed"]
        fail_slot = day(19, renamed_failing.slot_hour)
        self._periodic(renamed_failing, fail_on=fail_slot)
        self._rename(renamed_failing, f"{renamed_failing.app}-eu", fail_slot + timedelta(hours=5, minutes=20))
        decommissioned = by_role["decommissioned"]
        decommission_at, delete_at = day(23, 9, 30), day(27, 15, 30)
        self._periodic(decommissioned, off=(decommission_at, None), until=delete_at)
        self._delete(decommissioned, delete_at)
        if self.pitr_addon is not None:  # the restore point stops moving for 10 hours
            lag_from, lag_to = day(24, 2), day(24, 12)
            self.pitr_lag = (lag_from, lag_to)
            self.problems.append(
                Problem("point-in-time recovery behind", pitr.addon_id, lag_from, lag_from + PITR_MAX_LAG, lag_to)
            )
        # Without set_recovery_window in the fake, an ordinary database with periodic backups (the same draws
        # either way: the rest of the month does not change with it).
        self._periodic(pitr)

        # Noise (must never page).
        gone = by_role["deleted between discoveries"]
        self._periodic(gone)
        self.delete_at_discovery = (gone.addon_id, day(21))
        self.noise.append(Noise("deleted (its next read answers 404)", decommissioned.addon_id, delete_at))
        for role, on_day in (("short answer", 6), ("empty answer", 9), ("500", 12), ("404", 15)):
            db = by_role[role]
            self._periodic(db)
            self._glitch(db, role, check_at(day(on_day, db.slot_hour) + timedelta(hours=6)))
        healthy_rename = by_role["renamed"]
        self._periodic(healthy_rename)
        self._rename(healthy_rename, f"{healthy_rename.app}-v2", day(4, 15, 30))
        if self.pitr_addon is not None:
            self.noise.append(Noise("periodic dumps off, relies on point-in-time recovery", pitr.addon_id, MONTH_START))
        healthy = [db for db in dbs if db.role == "healthy"]
        for db in healthy:
            self._periodic(db)
        self._manual_backups(healthy)  # not on the others: a manual backup would answer for the slot of their story
        self._resolve_outages()

    def _slot_after(self, db: Db) -> datetime:
        slot = db.created_at.replace(hour=db.slot_hour, minute=0, second=0, microsecond=0)
        return slot if slot >= db.created_at else slot + timedelta(days=1)

    def _size(self, db: Db, moment: datetime) -> int:
        index = (moment - (MONTH_START - timedelta(days=HISTORY_DAYS))).days
        return int(db.size * self._drift[db.addon_id][max(0, index)])

    def _periodic(
        self,
        db: Db,
        *,
        fail_on: datetime | None = None,
        skip: datetime | None = None,
        stuck_on: datetime | None = None,
        off: tuple[datetime, datetime | None] | None = None,
        until: datetime | None = None,
        never: bool = False,
    ) -> None:
        """The periodic backups of `db` (one a day at its slot), and the real problems planted in them."""
        rng = self.rng
        lives = self.lives.setdefault(db.addon_id, [])
        first = MONTH_START - timedelta(days=HISTORY_DAYS) + timedelta(hours=db.slot_hour)
        for n in range(HISTORY_DAYS + DAYS):
            slot = first + timedelta(days=n)
            queue = timedelta(minutes=rng.uniform(1, 20) if rng.random() < 0.7 else rng.uniform(20, 150))
            size = self._size(db, slot)
            run = timedelta(minutes=2 + 10 * size / (5 * GB) + rng.uniform(0, 5))
            if slot < db.created_at or never or not db.periodic or (until is not None and slot >= until):
                continue
            if off is not None and off[0] <= slot and (off[1] is None or slot < off[1]):
                continue
            if slot == skip:
                self.problems.append(Problem("skipped periodic backup", db.addon_id, slot, slot))
                continue
            start = slot + queue
            life = BackupLife(db.addon_id, slot, "periodic", start, start + run, "done", size)
            if slot == fail_on:
                life.final, life.size = "error", 0
                self.problems.append(Problem("failed periodic backup", db.addon_id, slot, start + run))
            if slot == stuck_on:
                life.end_at = start + timedelta(hours=14)  # hangs for 14 hours, then ends
                self.problems.append(Problem("backup stuck running", db.addon_id, slot, start + STUCK))
            lives.append(life)
        if off is not None:
            slots_off = [first + timedelta(days=n) for n in range(HISTORY_DAYS + DAYS)]
            onset = next(s for s in slots_off if s >= off[0])
            self.problems.append(
                Problem("periodic backups switched off", db.addon_id, off[0], onset, off[1] or until, page=False)
            )
            self.events.append(Event(off[0], f"{db.app}: periodic backups off", lambda: self._set_periodic(db, False)))
            if off[1] is not None:
                self.events.append(
                    Event(off[1], f"{db.app}: periodic backups on", lambda: self._set_periodic(db, True))
                )

    def _resolve_outages(self) -> None:
        """A failed, skipped or stuck slot ends with the first usable backup made for it or after it (a stuck
        backup that finally ends as `done` ends its own)."""
        for problem in self.problems:
            if problem.what not in ("failed periodic backup", "skipped periodic backup", "backup stuck running"):
                continue
            fixed = [
                life.end_at
                for life in self.lives[problem.addon_id]
                if life.created_at >= problem.injected_at and life.final == "done" and life.end_at is not None
            ]
            problem.resolved_at = min(fixed, default=None)

    def _manual_backups(self, dbs: list[Db]) -> None:
        """Now and then a user makes a manual backup; three of them are cancelled by their user."""
        rng = self.rng
        manual: list[BackupLife] = []
        for db in dbs:
            for _ in range(rng.randrange(0, 4)):
                at = MONTH_START + timedelta(minutes=rng.randrange(2 * 24 * 60, (DAYS - 1) * 24 * 60))
                start = at + timedelta(minutes=rng.uniform(0.5, 3))
                size = int(self._size(db, at) * rng.uniform(0.98, 1.03))
                run = timedelta(minutes=2 + 10 * size / (5 * GB))
                manual.append(BackupLife(db.addon_id, at, "manual", start, start + run, "done", size))
        for life in rng.sample(manual, 3):
            life.final, life.size = "cancelled", 0
            life.cancel_at = (life.start_at or life.created_at) + timedelta(minutes=1)
            life.end_at = life.cancel_at + timedelta(minutes=2)
            db = self.dbs[life.addon_id]
            self.noise.append(Noise(f"manual backup cancelled by its user ({db.app})", life.addon_id, life.created_at))
        for life in manual:
            self.lives.setdefault(life.addon_id, []).append(life)
        for lives in self.lives.values():
            lives.sort(key=lambda x: x.created_at)

    def _glitch(self, db: Db, kind: str, at: datetime) -> None:
        """One bad answer to one check (its retries included) for a database that is fine."""
        path = f"/api/databases/{db.addon_id}/backups"

        def inject() -> None:
            if kind == "short answer":  # the newest backup is left out once
                listed = sorted(self.fake.backups(db.addon_id), key=lambda b: str(b["created_at"]), reverse=True)
                self.fake.fail(path, 200, json.dumps({"database_backups": listed[1:]}))
            elif kind == "empty answer":
                self.fake.fail(path, 200, json.dumps({"database_backups": []}))
            elif kind == "500":
                self.fake.fail(path, 500, times=2)  # the client's try and its retry
            else:  # 404 while the database exists (discovery still lists it)
                self.fake.fail(path, 404, json.dumps({"resource": "database", "error": "not found"}))

        self.events.append(Event(at, f"{db.app}: {kind}", inject))
        self.noise.append(Noise(f"{kind} once", db.addon_id, at))

    def _rename(self, db: Db, new: str, at: datetime) -> None:
        """`scalingo rename`: the app gets a new name; its addon keeps its id, database and backups."""

        def rename() -> None:
            old_backups = self.fake.backups(db.addon_id)
            database = dict(self.fake.database(db.addon_id))
            old = db.app
            self.fake.remove_app(old, db.region)
            addon = self.fake.add_database(
                new, db.addon_id, provider=db.provider, region=db.region, resource_id=db.resource_id
            )
            addon.database.update(database, app_name=new)
            addon.backups = old_backups
            db.app = new
            self.renamed[db.addon_id] = (old, new)

        self.names[new] = db.addon_id
        self.events.append(Event(at, f"{db.app} renamed {new}", rename))
        self.noise.append(Noise(f"app renamed ({db.app} -> {new})", db.addon_id, at))

    def _delete(self, db: Db, at: datetime) -> None:
        self.events.append(Event(at, f"{db.app} deleted", lambda: self._remove(db.addon_id, at)))

    def _remove(self, addon_id: str, at: datetime) -> None:
        self.fake.remove_database(addon_id)
        self.present.discard(addon_id)
        self.deleted[addon_id] = at

    def _create(self, db: Db) -> None:
        self.fake.add_database(
            db.app,
            db.addon_id,
            provider=db.provider,
            region=db.region,
            resource_id=db.resource_id,
            periodic_backups_enabled=db.periodic,
            scheduled_hours=[db.slot_hour],
            created_at=db.created_at,
        )
        self.present.add(db.addon_id)

    def _set_periodic(self, db: Db, enabled: bool) -> None:
        self.fake.database(db.addon_id)["periodic_backups_enabled"] = enabled

    # -- playing it --------------------------------------------------------------------------------------

    def before_check(self, now: datetime) -> None:
        """Bring Scalingo to `now`: backups listed and progressed, retention applied, then the story's events."""
        for addon_id in sorted(self.present):
            self._progress(addon_id, now)
        for event in [e for e in self.events if e.at <= now]:
            event.action()
            self.events.remove(event)
        if self.delete_at_discovery is not None:
            addon_id, not_before = self.delete_at_discovery
            # Deleted in the hour before a discovery: this check lists the apps again and does not find it.
            due = self.discovered_at is None or now - self.discovered_at >= DISCOVERY_EVERY
            if now >= not_before and due:
                self._remove(addon_id, now - timedelta(minutes=5))
                self.noise.append(Noise("deleted in the hour before a discovery", addon_id, now - timedelta(minutes=5)))
                self.delete_at_discovery = None
                self.deleted_before_discovery = now
        if self.recovery_window is not None and self.pitr_addon in self.present:
            latest = now - timedelta(minutes=2)
            if self.pitr_lag is not None and self.pitr_lag[0] <= now < self.pitr_lag[1]:
                latest = self.pitr_lag[0]
            self.recovery_window(self.pitr_addon, now - timedelta(days=7), latest)

    def _progress(self, addon_id: str, now: datetime) -> None:
        listed = self.fake.backups(addon_id)
        for life in self.lives.get(addon_id, []):
            if life.pruned or life.created_at > now:
                continue
            status = life.status_at(now)
            if life.entry is None:
                life.entry = self.fake.add_backup(addon_id, life.created_at, status, size=0, method=life.method)
            started = life.start_at is not None and now >= life.start_at
            life.entry["status"] = status
            life.entry["started_at"] = iso(life.start_at) if started and life.start_at is not None else None
            life.entry["size"] = life.size if status == "done" else 0
        # Retention: the newest periodic and manual backups are kept, the oldest pruned.
        for method, keep in (("periodic", KEEP_PERIODIC), ("manual", KEEP_MANUAL)):
            lives = [x for x in self.lives.get(addon_id, []) if x.method == method and x.entry and not x.pruned]
            for life in lives[:-keep] if len(lives) > keep else []:
                life.pruned = True
                listed.remove(life.entry)

    def after_check(self, now: datetime, discovered: bool) -> None:
        if discovered:
            self.discovered_at = now
        elif now == self.deleted_before_discovery:
            self.discovery_missed_deletion = True

    def addon_of(self, app: str, resource_id: str | None) -> str:
        if resource_id and resource_id in self.names:
            return self.names[resource_id]
        return self.names.get(app, f"?{app}")

    def app_of(self, addon_id: str) -> str:
        return self.dbs[addon_id].app if addon_id in self.dbs else addon_id


# -- what Slack received ----------------------------------------------------------------------------------------

WHO = re.compile(
    r"\*(?P<app>[^*\n]+?)\*(?: / `(?P<res>[^`\n]+)`)? \((?P<type>[^,()\n]+), (?P<region>[^()\n]+)\)(?P<rest>.*)"
)
BACKUP_NAME = re.compile(r"Backup `(?P<name>[^`\n]+)` scheduled")
FIRST_CODE = re.compile(r"^: `(?P<name>[^`\n]+)`")
SLOT = re.compile(r"slot of <!date\^\d+\^[^|>]*\|(?P<slot>[^>]+)>")
GROUP = re.compile(r"^(?P<heading>.+) on (?P<count>[\d,]+) databases(?: \(part (?P<part>\d+) of (?P<parts>\d+)\))?$")
DIGEST = re.compile(r"^\d+ new successful backups?(?: \(part \d+ of \d+\))?$")


def _headings() -> dict[str, tuple[str, str]]:
    """Every heading the product can give a message -> (kind, phase); a phase without its own title shares the
    opening's, which then wins."""
    found: dict[str, tuple[str, str]] = {}
    for phase in (Phase.OPEN, Phase.NOTICE, Phase.UPDATE, Phase.REMIND, Phase.RESOLVE):
        for kind in Kind:
            found.setdefault(title(Notice(kind, phase)), (kind.value, phase.value))
    return found


HEADINGS = _headings()


@dataclass(frozen=True)
class Item:
    """One database a message speaks of, and what about (a backup's name, a slot), as far as the text says."""

    addon_id: str
    subject: str


@dataclass
class Said:
    """One message Slack accepted, with the simulated time of the check that sent it."""

    at: datetime
    check: int
    text: str
    kind: str
    phase: str
    mention: bool
    grouped: bool
    items: list[Item]

    def line(self) -> str:
        names = ", ".join(sorted({i.addon_id for i in self.items})) or "-"
        return f"[{self.at:%m-%d %H:%M}] {self.text!r} (about {names})"


def _section_lines(body: dict[str, Any]) -> Iterator[str]:
    for block in body.get("blocks") or []:
        text = block.get("text") if isinstance(block, dict) else None
        if isinstance(text, dict) and isinstance(text.get("text"), str):
            yield from text["text"].split("\n")


def parse(body: dict[str, Any], at: datetime, check: int, world: World) -> Said:
    """What one accepted Slack message says, read as on-call reads it."""
    text = str(body.get("text", ""))
    mention = text.startswith(MENTION + " ")
    bare = text.removeprefix(MENTION + " ")
    kind, phase, grouped = "other", "", False
    if bare.startswith("Daily backup report:"):
        kind = "report"
    elif DIGEST.match(bare):
        kind, phase, grouped = Kind.SUCCEEDED.value, Phase.NOTICE.value, True
    elif (group := GROUP.match(bare)) and group["heading"] in HEADINGS:
        (kind, phase), grouped = HEADINGS[group["heading"]], True
    elif " in " in bare and bare.rsplit(" in ", 1)[0] in HEADINGS:  # a region's API outage
        kind, phase = HEADINGS[bare.rsplit(" in ", 1)[0]]
        return Said(at, check, text, kind, phase, mention, False, [Item(f"region {bare.rsplit(' in ', 1)[1]}", "")])
    else:
        heading = max((h for h in HEADINGS if bare.startswith(h + ": ")), key=len, default=None)
        if heading is not None:
            kind, phase = HEADINGS[heading]
    items: list[Item] = []
    if kind != "report":
        lines = list(_section_lines(body))
        whole = "\n".join(lines)
        for line in lines:
            who = WHO.search(line)
            if who is None:
                continue
            addon_id = world.addon_of(who["app"], who["res"])
            rest = who["rest"]
            if grouped:
                code, slot = FIRST_CODE.match(rest), SLOT.search(rest)
                subject = code["name"] if code else slot["slot"] if slot else ""
            else:
                backup, slot = BACKUP_NAME.search(whole), SLOT.search(whole)
                subject = backup["name"] if backup else slot["slot"] if slot else ""
            items.append(Item(addon_id, subject))
            if not grouped:
                break
    return Said(at, check, text, kind, phase, mention, grouped, items)


# -- the month --------------------------------------------------------------------------------------------------


@dataclass
class Month:
    """A month played: the world as planned, every accepted message, and the figures."""

    world: World
    said: list[Said] = field(default_factory=list)
    checks: int = 0
    checks_not_ok: list[str] = field(default_factory=list)
    check_errors: list[str] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    check_seconds: list[float] = field(default_factory=list)
    wall_seconds: float = 0.0

    def pages(self) -> list[tuple[Said, Item]]:
        """Every database a message carrying the mention called on-call for (parts of a grouped message that
        followed a part with the mention, in the same check, page with it)."""
        paged: list[tuple[Said, Item]] = []
        carrying: tuple[int, str] | None = None
        for said in self.said:
            part = GROUP.match(said.text.removeprefix(MENTION + " "))
            follows = carrying is not None and carrying == (said.check, said.kind) and part is not None and part["part"]
            if said.mention or follows:  # a page naming no database it can be about is a false page
                paged.extend((said, item) for item in said.items or [Item("?", "")])
                carrying = (said.check, said.kind) if part is not None and part["part"] else None
        return paged


def answer_at_once(server: Any) -> None:
    """The fakes send an answer's headers and its body in two writes: with Nagle's algorithm on, the body then
    waits for the client's delayed ACK, 40 ms a request on Linux (most of a check's time). TCP_NODELAY on the
    listening socket (accepted connections inherit it) removes that wait; the answers stay the same."""
    server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def run_month(workdir: Path, *, seed: int = SEED, days: int = DAYS) -> Month:
    """Play `days` days of the month, one check an hour."""
    clock = [MONTH_START.timestamp()]

    def now_ts() -> float:
        return clock[0]

    started = time.monotonic()
    with FakeScalingo(clock=now_ts) as fake, FakeSlack() as slack:
        answer_at_once(fake._server)
        answer_at_once(slack._server)
        world = World(fake, seed)
        month = Month(world)
        settings = Settings.from_env({**scalingo_env(fake), **ENV, "STATE_PATH": str(workdir / "state.sqlite3")})
        notifier = WebhookNotifier(slack.webhook_url)
        notifier.pace_seconds = 0.0  # simulated hours: Slack's one post a second is not what this test is about
        scalingo = ScalingoClient.from_settings(
            settings, session=build_session(retries=1, backoff_factor=0.01), clock=now_ts
        )
        clients = Clients(scalingo, SqliteStateStore(workdir / "state.sqlite3"), notifier)
        seen_requests = seen_messages = 0
        for n in range(days * 24):
            now = MONTH_START + timedelta(hours=n, minutes=CHECK_MINUTE)
            clock[0] = now.timestamp()
            world.before_check(now)
            began = time.monotonic()
            summary = run_check(settings, clients, now)
            month.check_seconds.append(time.monotonic() - began)
            month.checks += 1
            if summary.error is not None:
                month.check_errors.append(f"[{now:%m-%d %H:%M}] {summary.error}")
            elif not summary.ok:
                month.checks_not_ok.append(f"[{now:%m-%d %H:%M}] {summary.line()}")
            new_requests = fake.requests[seen_requests:]
            seen_requests += len(new_requests)
            for request in new_requests:
                month.requests[_request_kind(request.api, request.method, request.path)] += 1
            world.after_check(now, any(r.method == "GET" and r.path == "/v1/apps" for r in new_requests))
            accepted = slack.messages()
            for body in accepted[seen_messages:]:
                month.said.append(parse(body, now, n, world))
            seen_messages = len(accepted)
    month.wall_seconds = time.monotonic() - started
    return month


def _request_kind(api: str, method: str, path: str) -> str:
    if api == "db":
        if path.endswith("/backups"):
            return "backup list reads"
        return "database info reads" if path.count("/") == 3 else "other database-API requests"
    if api == "main":
        if path.endswith("/token"):
            return "addon tokens (main API)"
        return "discovery (main API)"
    return f"{api} requests"


# -- judging the month ------------------------------------------------------------------------------------------


def false_pages(month: Month) -> list[str]:
    """Pages that no injected real problem explains (database and time)."""
    wrong = []
    for said, item in month.pages():
        if not any(p.addon_id == item.addon_id and p.covers(said.at) and p.page for p in month.world.problems):
            noise = [n for n in month.world.noise if n.addon_id == item.addon_id and n.at <= said.at]
            latest = f"; the noise before it: {noise[-1].what} at {noise[-1].at:%m-%d %H:%M}" if noise else ""
            wrong.append(f"{said.line()} paged for {month.world.app_of(item.addon_id)} ({item.addon_id}){latest}")
    return wrong


def missed_outages(month: Month) -> list[str]:
    """Real problems not paged exactly once by their deadline."""
    pages = month.pages()
    wrong = []
    for problem in month.world.problems:
        mine = [s for s, i in pages if i.addon_id == problem.addon_id and problem.covers(s.at)]
        if not problem.page:  # a warning: announced once, in time, calling no one
            if mine:
                wrong.append(f"{problem.what} on {month.world.app_of(problem.addon_id)}: paged ({mine[0].line()})")
            mine = [
                s
                for s in month.said
                if s.phase == Phase.OPEN.value
                and problem.covers(s.at)
                and any(i.addon_id == problem.addon_id for i in s.items)
            ]
        where = f"{problem.what} on {month.world.app_of(problem.addon_id)} ({problem.addon_id})"
        timing = f"onset {problem.onset:%m-%d %H:%M}, deadline {problem.deadline:%m-%d %H:%M}"
        about = [
            s.line()
            for s in month.said
            if s.kind != Kind.SUCCEEDED.value
            and problem.covers(s.at)
            and any(i.addon_id == problem.addon_id for i in s.items)
        ]
        said = "; ".join(about[:3]) + (f" (and {len(about) - 3} more)" if len(about) > 3 else "")
        if not mine:
            wrong.append(f"{where}: never paged ({timing}); said about it: {said or 'nothing'}")
        elif mine[0].at > problem.deadline:
            wrong.append(f"{where}: paged late ({timing}): {mine[0].line()}")
        elif len(mine) > 1:
            wrong.append(f"{where}: paged {len(mine)} times ({timing}): " + "; ".join(s.line() for s in mine))
    return wrong


ONE_OFF_NOTICES = {Kind.SUCCEEDED.value, Kind.FAILED.value, Kind.SUSPICIOUS.value}


def announced_twice(month: Month) -> list[str]:
    """Second openings of one incident (same addon id, kind and backup or slot), and backups announced twice.

    An incident without a backup or slot (periodic backups off, cannot check) is the same incident until a
    message resolves it."""
    opened: dict[tuple[str, str, str], Said] = {}  # the latest opening of each
    resolved: dict[tuple[str, str], datetime] = {}
    wrong = []
    for said in month.said:
        opening = said.phase == Phase.OPEN.value or (said.phase == Phase.NOTICE.value and said.kind in ONE_OFF_NOTICES)
        for item in said.items:
            if said.phase == Phase.RESOLVE.value:
                resolved[(item.addon_id, said.kind)] = said.at
            if not opening:
                continue
            key = (item.addon_id, said.kind, item.subject)
            before = opened.get(key)
            closed_since = before is not None and resolved.get((item.addon_id, said.kind), before.at) > before.at
            if before is not None and (item.subject or not closed_since):
                what = f"{said.kind} {item.subject or '(no backup or slot)'} on {month.world.app_of(item.addon_id)}"
                wrong.append(f"{what}: first {before.line()}, again {said.line()}")
            opened[key] = said
    return wrong


def deletions_not_said_once(month: Month) -> list[str]:
    """Deleted databases not said once to be no longer watched (or whose open incidents were not closed with
    it), and databases said to be gone that were not deleted."""
    world = month.world
    gone = Counter(item.addon_id for said in month.said if said.kind == Kind.GONE.value for item in said.items)
    wrong = []
    for addon_id, at in sorted(world.deleted.items(), key=lambda kv: kv[1]):
        app = world.app_of(addon_id)
        if gone[addon_id] != 1:
            wrong.append(f"{app} ({addon_id}) deleted {at:%m-%d %H:%M}: said no longer watched {gone[addon_id]} times")
        open_kinds: set[str] = set()
        for said in (s for s in month.said if any(i.addon_id == addon_id for i in s.items)):
            if said.phase == Phase.OPEN.value:
                open_kinds.add(said.kind)
            elif said.phase == Phase.RESOLVE.value:
                open_kinds.discard(said.kind)
        if open_kinds:
            wrong.append(f"{app} ({addon_id}): incidents never closed: {', '.join(sorted(open_kinds))}")
    for said in month.said:
        for item in said.items:
            if said.kind == Kind.GONE.value and item.addon_id not in world.deleted:
                wrong.append(f"{said.line()}: {world.app_of(item.addon_id)} was not deleted")
    return wrong


def figures(month: Month) -> str:
    """The month in numbers, to quote."""
    kinds = Counter(f"{s.kind} {s.phase}".strip() for s in month.said)
    pages = month.pages()
    mean_ms = 1000 * sum(month.check_seconds) / max(1, month.checks)
    max_ms = 1000 * max(month.check_seconds, default=0.0)
    pitr = (
        "" if month.world.pitr_addon else " (point-in-time recovery not simulated: the fake has no set_recovery_window)"
    )
    lines = [
        f"checks run: {month.checks} ({len(month.checks_not_ok)} not ok, {len(month.check_errors)} errors)",
        f"databases: {FLEET} planned, {len(month.world.deleted)} deleted, {len(month.world.renamed)} renamed",
        "requests: " + ", ".join(f"{k} {v}" for k, v in sorted(month.requests.items())),
        f"messages: {len(month.said)}, pages (databases called for): {len(pages)} in "
        f"{len({id(s) for s, _ in pages})} messages",
        "messages per kind: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())),
        f"real problems injected: {len(month.world.problems)}; noise: {len(month.world.noise)}{pitr}",
        f"wall time: {month.wall_seconds:.1f} s (a check: mean {mean_ms:.0f} ms, max {max_ms:.0f} ms)",
    ]
    return "\n".join(lines)
