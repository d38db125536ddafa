"""State stores: DynamoDB in AWS, SQLite locally, one contract."""

from backup_monitor.state.base import ConflictError, StateError, StateStore

__all__ = ["ConflictError", "StateError", "StateStore"]
