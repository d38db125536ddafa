"""SQLite state store: one local file, safe for two processes at once (transactions, busy timeout)."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

from backup_monitor.records import Record, record_from_json
from backup_monitor.state.base import (
    CLAIM_SECONDS,
    RECORD_TTL_SECONDS,
    Blob,
    ConflictError,
    RequestCounter,
    StateError,
    UnreadableRecordError,
    dump,
    load_data,
    read_records,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    pk TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    data TEXT,
    claim_owner TEXT,
    claim_expires_at REAL,
    expires_at REAL
)
"""
# Sealed tokens and the check cursor: opaque values beside the records (the same keys as in DynamoDB).
BLOB_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (
    pk TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    expires_at REAL NOT NULL
)
"""
BUSY_TIMEOUT_SECONDS = 30.0


class SqliteStateStore(RequestCounter):
    """The same contract as the DynamoDB store, in one SQLite file."""

    def __init__(self, path: str | Path, *, shard: str = "") -> None:
        """Open (or create) the state file; StateError saying what is wrong when it cannot be read and written.

        `shard`: the shard whose own records a check keeps through this store (see base.shard_of)."""
        self.path = str(path)
        self.shard = shard
        super().__init__()
        if self.path != ":memory:":
            self._create_if_missing()
        # Switching to WAL takes an exclusive lock and SQLite does not wait on its busy timeout for it:
        # two processes opening a new file at once retry briefly instead of failing.
        for attempt in range(50):
            try:
                with self._connect() as conn:
                    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                        conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("BEGIN IMMEDIATE")
                    conn.execute(SCHEMA)
                    conn.execute(BLOB_SCHEMA)
                    conn.execute("COMMIT")
                    # SQLite opens a read-only file (or one in a read-only directory) and fails only at the
                    # first write, deep in a check: one write, rolled back, finds out now.
                    conn.execute("BEGIN IMMEDIATE")
                    conn.execute("CREATE TABLE write_probe (x)")
                    conn.execute("ROLLBACK")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 49:
                    raise StateError(_open_problem(self.path, exc)) from None
                time.sleep(0.1)
            except sqlite3.Error as exc:
                raise StateError(_open_problem(self.path, exc)) from None

    def _create_if_missing(self) -> None:
        if os.path.isdir(self.path):
            raise StateError(f"{self.path} is a directory, not a state file")
        if os.path.exists(self.path):
            return
        # The state holds Slack thread ids and sealed tokens: readable by its owner only (SQLite's WAL
        # and shared-memory files take the database file's permissions).
        try:
            os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            pass  # another process created it meanwhile
        except FileNotFoundError:
            directory = os.path.dirname(os.path.abspath(self.path))
            raise StateError(f"cannot create the state file {self.path}: no directory {directory}") from None
        except OSError as exc:
            raise StateError(f"cannot create the state file {self.path}: {exc.strerror or exc}") from None

    def __repr__(self) -> str:
        return f"SqliteStateStore({self.path!r})"

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE, then COMMIT, or ROLLBACK on any error); a SQLite error is a
        StateError. Counts one write when it commits."""
        try:
            with self._connect() as conn:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise StateError(f"cannot write the state file: {exc}") from None
        self._count(writes=1)

    def load_many(self, keys: Sequence[str], *, unreadable: dict[str, str] | None = None) -> dict[str, Record]:
        rows = self._select_by_keys("SELECT pk, version, data, claim_owner, claim_expires_at FROM records", keys)
        return read_records(rows, lambda row: str(row[0]), _record_of_row, unreadable)

    def _select_by_keys(self, select: str, keys: Sequence[str]) -> list[tuple[Any, ...]]:
        """`select ... WHERE pk IN (keys)`, in chunks SQLite accepts; one counted read per chunk."""
        unique = list(dict.fromkeys(keys))
        found: list[tuple[Any, ...]] = []
        try:
            with self._connect() as conn:
                for start in range(0, len(unique), 500):
                    chunk = unique[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    found.extend(conn.execute(f"{select} WHERE pk IN ({marks})", chunk).fetchall())
                    self._count(reads=1)
        except sqlite3.Error as exc:
            raise StateError(f"cannot read the state file: {exc}") from None
        return found

    def _write(self, sql_existing: str, args_existing: tuple[object, ...], record: Record, insert: bool) -> None:
        with self._transaction() as conn:
            if insert:
                cur = conn.execute(
                    "INSERT INTO records (pk, version, data, claim_owner, claim_expires_at, expires_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(pk) DO NOTHING",
                    args_existing,
                )
            else:
                cur = conn.execute(sql_existing, args_existing)
            changed = cur.rowcount
        if changed != 1:
            raise ConflictError(f"state record {record.key!r} changed or is claimed by another check")

    def save(self, record: Record, now: float) -> Record:
        new_version = record.version + 1
        expires = now + RECORD_TTL_SECONDS
        if record.version == 0:
            self._write("", (record.key, new_version, dump(record), None, None, expires), record, insert=True)
        else:
            self._write(
                "UPDATE records SET version = ?, data = ?, expires_at = ?, claim_owner = NULL, "
                "claim_expires_at = NULL WHERE pk = ? AND version = ? "
                "AND (claim_owner IS NULL OR claim_expires_at < ?)",
                (new_version, dump(record), expires, record.key, record.version, now),
                record,
                insert=False,
            )
        return replace(record, version=new_version, claim_owner=None, claim_expires_at=None)

    def claim(self, record: Record, owner: str, now: float, ttl: float = CLAIM_SECONDS) -> Record:
        new_version = record.version + 1
        until = now + ttl
        if record.version == 0:
            self._write(
                "",
                (record.key, new_version, None, owner, until, now + RECORD_TTL_SECONDS),
                record,
                insert=True,
            )
        else:
            self._write(
                "UPDATE records SET version = ?, claim_owner = ?, claim_expires_at = ? "
                "WHERE pk = ? AND version = ? AND (claim_owner IS NULL OR claim_expires_at < ?)",
                (new_version, owner, until, record.key, record.version, now),
                record,
                insert=False,
            )
        return replace(record, version=new_version, claim_owner=owner, claim_expires_at=until)

    def commit(
        self, record: Record, owner: str, now: float, *, release: bool = True, ttl: float = CLAIM_SECONDS
    ) -> Record:
        new_version = record.version + 1
        owner_after, until = (None, None) if release else (owner, now + ttl)
        expires = now + RECORD_TTL_SECONDS
        self._write(
            "UPDATE records SET version = ?, data = ?, expires_at = ?, claim_owner = ?, claim_expires_at = ? "
            "WHERE pk = ? AND version = ? AND claim_owner = ?",
            (new_version, dump(record), expires, owner_after, until, record.key, record.version, owner),
            record,
            insert=False,
        )
        return replace(record, version=new_version, claim_owner=owner_after, claim_expires_at=until)

    def load_blobs(self, keys: Sequence[str]) -> dict[str, Blob]:
        rows = self._select_by_keys("SELECT pk, data, expires_at FROM blobs", keys)
        return {pk: Blob(pk, data, float(expires)) for pk, data, expires in rows}

    def create_blob(self, blob: Blob, now: float) -> bool:
        """Write `blob` only if its key is absent or expired at `now` (one transaction): True if written, False
        when a live one is there already (the Slack endpoint's replay protection: a signature accepted once)."""
        with self._transaction() as conn:
            cur = conn.execute(
                "INSERT INTO blobs (pk, data, expires_at) VALUES (?, ?, ?) ON CONFLICT(pk) DO UPDATE SET "
                "data = excluded.data, expires_at = excluded.expires_at WHERE blobs.expires_at <= ?",
                (blob.key, blob.data, blob.expires_at, now),
            )
            return cur.rowcount == 1  # committed (and counted) as the block ends

    def save_blobs(self, blobs: Sequence[Blob]) -> None:
        if not blobs:
            return
        with self._transaction() as conn:
            conn.executemany(
                "INSERT INTO blobs (pk, data, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT(pk) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at",
                [(b.key, b.data, b.expires_at) for b in blobs],
            )
            # What DynamoDB's TTL does in AWS: tokens of databases no longer monitored go away.
            conn.execute("DELETE FROM blobs WHERE expires_at < ?", (time.time() - 86400,))


def _record_of_row(row: tuple[Any, ...]) -> Record:
    pk, version, data, owner, expires = row
    try:
        number = int(version)
        until = float(expires) if expires is not None else None
    except (TypeError, ValueError):
        raise UnreadableRecordError(pk, "has no valid version or claim expiry") from None
    return record_from_json(pk, load_data(data, pk), number, str(owner) if owner is not None else None, until)


def _open_problem(path: str, exc: sqlite3.Error) -> str:
    """What is wrong with the state file, in words (SQLite's own are terse)."""
    text = str(exc)
    if "readonly" in text:
        return f"the state file {path} cannot be written (a read-only file or directory)"
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in text:
        return f"{path} is not an SQLite state file ({text})"
    return f"cannot open the state file {path}: {text}"


class CheckRunningError(StateError):
    """Another check holds the state file's check lock (STATE_PATH.lock)."""

    def __init__(self, state_path: str, pid: int | None) -> None:
        self.state_path, self.pid = state_path, pid
        held_by = f" (pid {pid})" if pid is not None else ""
        super().__init__(f"another check is running on {state_path}{held_by}; this one did nothing")


def lock_path(state_path: str) -> str:
    """The lock file of a state file: beside it, `STATE_PATH.lock`."""
    return state_path + ".lock"


@contextmanager
def check_lock(state_path: str) -> Iterator[None]:
    """Hold the exclusive check lock of one SQLite state for a whole check: two checks on one state would each
    spend the token's whole rate limit (Scalingo counts them together) and race for the same incidents.

    Non-blocking: CheckRunningError at once when another process holds it (naming its pid, read from the lock
    file). The lock is fcntl.flock on `STATE_PATH.lock`: the kernel releases it when the process ends, however
    it ends, so a crashed check never leaves it held. (A cron line wrapped in `flock -n FILE` must name another
    file: flock(1) holding this one would make the check it starts find it taken.)
    A state in memory (":memory:") has nothing to share: no lock."""
    if state_path == ":memory:":
        yield
        return
    import fcntl

    path = lock_path(state_path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StateError(f"cannot open the check lock {path}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CheckRunningError(state_path, _pid_in(fd)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # the file stays (removing it would let a third process lock another inode)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def check_locks(stores: Sequence[object]) -> Iterator[None]:
    """The check lock of every SQLite state file among `stores` (each file once: shards may share one)."""
    from contextlib import ExitStack

    paths = dict.fromkeys(
        s.path if s.path == ":memory:" else os.path.abspath(s.path) for s in stores if isinstance(s, SqliteStateStore)
    )
    from backup_monitor.config import ConfigError

    with ExitStack() as held:
        for path in paths:
            try:
                held.enter_context(check_lock(path))
            except CheckRunningError:
                raise
            except StateError as exc:  # the lock file cannot be created beside the state: a bad STATE_PATH
                raise ConfigError("STATE_PATH", str(exc)) from None
        yield


def _pid_in(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
