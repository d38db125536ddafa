"""Run as a separate process: load one record and try to claim it at a given moment; print won/lost."""

from __future__ import annotations

import sys
import time

from backup_monitor.state.base import ConflictError, StateStore
from backup_monitor.state.dynamodb import DynamoStateStore
from backup_monitor.state.sqlite import SqliteStateStore


def open_store(kind: str, location: str) -> StateStore:
    return SqliteStateStore(location) if kind == "sqlite" else DynamoStateStore(location)


def main(kind: str, location: str, key: str, owner: str, start_at: str) -> int:
    store = open_store(kind, location)
    record = store.load_many([key])[key]
    time.sleep(max(0.0, float(start_at) - time.time()))
    try:
        store.claim(record, owner, time.time())
    except ConflictError:
        print("lost")
        return 0
    print("won")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:6]))
