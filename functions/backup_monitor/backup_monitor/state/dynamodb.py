"""DynamoDB state store: one item per database, batched reads, writes conditional on a version.

The endpoint is boto3's own business (`AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL`): nothing here
special-cases DynamoDB Local.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

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

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

BATCH_SIZE = 100
WRITE_BATCH_SIZE = 25
MAX_UNPROCESSED_ROUNDS = 8
FREE_OR_EXPIRED = "(attribute_not_exists(claim_owner) OR claim_expires_at < :now)"


def default_client(timeout: float = 10.0) -> DynamoDBClient:
    """A DynamoDB client with timeouts and adaptive retries (endpoint and region from the environment).

    StateError when boto3 cannot build one (no region, a malformed endpoint): nothing is contacted here."""
    config = Config(
        connect_timeout=min(timeout, 5.0),
        read_timeout=timeout,
        retries={"max_attempts": 5, "mode": "adaptive"},
    )
    try:
        return boto3.client("dynamodb", config=config)
    except (BotoCoreError, ValueError) as exc:
        raise StateError(f"cannot set up a DynamoDB client: {exc}") from None


class DynamoStateStore(RequestCounter):
    """The state contract on one DynamoDB table (string hash key `pk`)."""

    def __init__(self, table: str, client: DynamoDBClient | None = None, *, shard: str = "") -> None:
        """`shard`: the shard whose own records a check keeps through this store (see base.shard_of)."""
        self.table = table
        self.shard = shard
        self._client = client or default_client()
        super().__init__()

    def __repr__(self) -> str:
        return f"DynamoStateStore({self.table!r})"

    def load_many(self, keys: Sequence[str], *, unreadable: dict[str, str] | None = None) -> dict[str, Record]:
        return read_records(self._batch_get(keys), lambda item: str(item["pk"]["S"]), _from_item, unreadable)

    def load_blobs(self, keys: Sequence[str]) -> dict[str, Blob]:
        found: dict[str, Blob] = {}
        for item in self._batch_get(keys):
            key = item["pk"]["S"]
            data = item.get("blob", {}).get("S")
            if data is not None:
                found[key] = Blob(key, data, float(item.get("expires_at", {}).get("N", "0")))
        return found

    def save_blobs(self, blobs: Sequence[Blob]) -> None:
        unique = list({b.key: b for b in blobs}.values())
        for start in range(0, len(unique), WRITE_BATCH_SIZE):
            pending: dict[str, Any] = {
                self.table: [
                    {
                        "PutRequest": {
                            "Item": {
                                "pk": {"S": b.key},
                                "blob": {"S": b.data},
                                "expires_at": {"N": str(int(b.expires_at))},
                            }
                        }
                    }
                    for b in unique[start : start + WRITE_BATCH_SIZE]
                ]
            }
            for attempt in range(MAX_UNPROCESSED_ROUNDS):
                try:
                    answer = self._client.batch_write_item(RequestItems=pending)
                except (ClientError, BotoCoreError) as exc:
                    raise StateError(f"cannot write the state table: {_reason(exc)}") from None
                self._count(writes=1)
                pending = dict(answer.get("UnprocessedItems") or {})
                if not pending:
                    break
                time.sleep(min(2.0, 0.05 * 2**attempt))
            else:
                raise StateError("cannot write the state table: items stayed unprocessed after retries")

    def create_blob(self, blob: Blob, now: float) -> bool:
        """Write `blob` only if its key is absent or expired at `now` (a conditional put): True if written, False
        when a live one is there already (the Slack endpoint's replay protection: a signature accepted once)."""
        try:
            self._client.put_item(
                TableName=self.table,
                Item={"pk": {"S": blob.key}, "blob": {"S": blob.data}, "expires_at": {"N": str(int(blob.expires_at))}},
                ConditionExpression="attribute_not_exists(pk) OR expires_at <= :now",
                ExpressionAttributeValues={":now": {"N": str(int(now))}},
            )
        except ClientError as exc:
            self._count(writes=1)
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise StateError(f"cannot write the state table: {_reason(exc)}") from None
        except BotoCoreError as exc:
            raise StateError(f"cannot write the state table: {_reason(exc)}") from None
        self._count(writes=1)
        return True

    def _batch_get(self, keys: Sequence[str]) -> list[dict[str, Any]]:
        """Every stored item of `keys`, strongly consistent, 100 keys a request."""
        found: list[dict[str, Any]] = []
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), BATCH_SIZE):
            pending: dict[str, Any] = {
                self.table: {
                    "Keys": [{"pk": {"S": k}} for k in unique[start : start + BATCH_SIZE]],
                    "ConsistentRead": True,
                }
            }
            for attempt in range(MAX_UNPROCESSED_ROUNDS):
                try:
                    answer = self._client.batch_get_item(RequestItems=pending)
                except (ClientError, BotoCoreError) as exc:
                    raise StateError(f"cannot read the state table: {_reason(exc)}") from None
                self._count(reads=1)
                found.extend(answer.get("Responses", {}).get(self.table, []))
                pending = dict(answer.get("UnprocessedKeys") or {})
                if not pending:
                    break
                time.sleep(min(2.0, 0.05 * 2**attempt))  # DynamoDB asks us to slow down
            else:
                raise StateError("cannot read the state table: keys stayed unprocessed after retries")
        return found

    def _put(self, record: Record, item: dict[str, Any], condition: str, values: dict[str, Any]) -> None:
        extra: dict[str, Any] = {"ExpressionAttributeValues": values} if values else {}
        try:
            self._client.put_item(TableName=self.table, Item=item, ConditionExpression=condition, **extra)
        except ClientError as exc:
            self._count(writes=1)
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise ConflictError(f"state record {record.key!r} changed or is claimed by another check") from None
            raise StateError(f"cannot write the state table: {_reason(exc)}") from None
        except BotoCoreError as exc:
            raise StateError(f"cannot write the state table: {_reason(exc)}") from None
        self._count(writes=1)

    def _item(
        self,
        record: Record,
        version: int,
        now: float,
        owner: str | None = None,
        until: float | None = None,
        with_data: bool = True,
    ) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": {"S": record.key},
            "version": {"N": str(version)},
            "expires_at": {"N": str(int(now + RECORD_TTL_SECONDS))},
        }
        if with_data:
            item["data"] = {"S": dump(record)}
        if owner is not None and until is not None:
            item["claim_owner"] = {"S": owner}
            item["claim_expires_at"] = {"N": repr(until)}
        return item

    def save(self, record: Record, now: float) -> Record:
        version = record.version + 1
        self._put_if_unclaimed(record, self._item(record, version, now), now)
        return replace(record, version=version, claim_owner=None, claim_expires_at=None)

    def _put_if_unclaimed(self, record: Record, item: dict[str, Any], now: float) -> None:
        """Write `item` if the record is absent (version 0) or still at its version with no live claim."""
        if record.version == 0:
            self._put(record, item, "attribute_not_exists(pk)", {})
        else:
            self._put(
                record,
                item,
                f"version = :v AND {FREE_OR_EXPIRED}",
                {":v": {"N": str(record.version)}, ":now": {"N": repr(now)}},
            )

    def claim(self, record: Record, owner: str, now: float, ttl: float = CLAIM_SECONDS) -> Record:
        version = record.version + 1
        until = now + ttl
        # The claim carries the data as read, so a crash before commit loses nothing.
        item = self._item(record, version, now, owner, until, with_data=record.version != 0)
        self._put_if_unclaimed(record, item, now)
        return replace(record, version=version, claim_owner=owner, claim_expires_at=until)

    def commit(
        self, record: Record, owner: str, now: float, *, release: bool = True, ttl: float = CLAIM_SECONDS
    ) -> Record:
        version = record.version + 1
        owner_after, until = (None, None) if release else (owner, now + ttl)
        self._put(
            record,
            self._item(record, version, now, owner_after, until),
            "version = :v AND claim_owner = :owner",
            {":v": {"N": str(record.version)}, ":owner": {"S": owner}},
        )
        return replace(record, version=version, claim_owner=owner_after, claim_expires_at=until)


def _from_item(item: dict[str, Any]) -> Record:
    key = str(item["pk"]["S"])
    try:
        version = int(item["version"]["N"])
        until = item.get("claim_expires_at", {}).get("N")
        claim_expires_at = float(until) if until else None
        owner = item.get("claim_owner", {}).get("S")
        # An attribute of another DynamoDB type must not read as absent: the record would be rewritten empty.
        raw = item["data"]["S"] if "data" in item else None
    except (KeyError, TypeError, ValueError, AttributeError):
        raise UnreadableRecordError(key, "has no valid version, claim or data attribute") from None
    return record_from_json(key, load_data(raw, key), version, owner, claim_expires_at)


def _reason(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip()
    return type(exc).__name__
