"""Several Scalingo accounts in one stack (SCALINGO_API_TOKEN_PARAMETERS): each token is a shard, checked by an
invocation of its own.

The schedule's event names no shard: the handler then invokes its own function once per shard, asynchronously,
with {"shard": "<id>"} (`fan_out`), and returns. Each of those invocations checks its shard only, with the
token of its own SSM parameter, on the one state table: the database records are shared (an addon id is
global, and the claims keep two checks of one database apart), the records a check keeps one of (discovery,
cursor, bearer, report, outages) are the shard's (config.shard_key).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from backup_monitor.config import Settings
from backup_monitor.secrets import describe

logger = logging.getLogger(__name__)

INVOKE_TIMEOUT_SECONDS = 10.0
ACCEPTED = 202  # Lambda's answer to an asynchronous invocation it queued


class Invoker(Protocol):
    """What `fan_out` uses of boto3's Lambda client."""

    def invoke(self, **kwargs: Any) -> Any: ...


@dataclass(slots=True)
class FanOut:
    """The shards whose check was queued, and those whose invocation failed (shard id -> why)."""

    invoked: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def lambda_client(timeout: float = INVOKE_TIMEOUT_SECONDS) -> Invoker:
    """A Lambda client with timeouts and standard retries (endpoint and region from the environment: boto3
    honours AWS_ENDPOINT_URL_LAMBDA)."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=min(timeout, 5.0), read_timeout=timeout, retries={"max_attempts": 3})
    client: Invoker = boto3.client("lambda", config=config)
    return client


def shard_event(shard: str, parent_id: str | None = None) -> dict[str, str]:
    """The event of one shard's check: its id, and the scheduled event's id (the logs' correlation id)."""
    return {"shard": shard, **({"id": parent_id} if parent_id else {})}


def fan_out(settings: Settings, function_name: str, client: Invoker, parent_id: str | None = None) -> FanOut:
    """Invoke `function_name` asynchronously once per shard; one failed invocation does not stop the others."""
    result = FanOut()
    for shard in settings.shards:
        payload = json.dumps(shard_event(shard, parent_id)).encode()
        try:
            answer = client.invoke(FunctionName=function_name, InvocationType="Event", Payload=payload)
        except Exception as exc:  # botocore's errors, and whatever else a client raises: the next shard still goes
            result.failed[shard] = describe(exc)
            logger.error("could not invoke the check of a shard", extra={"shard": shard, "error": result.failed[shard]})
            continue
        status = answer.get("StatusCode") if isinstance(answer, dict) else None
        if status != ACCEPTED:
            result.failed[shard] = f"Lambda answered {status} (not {ACCEPTED}: queued)"
            logger.error("could not invoke the check of a shard", extra={"shard": shard, "error": result.failed[shard]})
            continue
        result.invoked.append(shard)
    return result
