"""Lambda handler: thin. Settings and clients live while the container is warm (secrets re-read after their
cache age, or at once when refused: `backup_monitor.warm`); the check is `run_check`.

With several API tokens (SCALINGO_API_TOKEN_PARAMETERS), an event without a shard (the schedule's) invokes
this function once per shard and returns; an event {"shard": "<id>"} checks that shard (`backup_monitor.shards`).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from backup_monitor.config import Settings
from backup_monitor.monitor import Clients, Summary, run_check
from backup_monitor.rules import Kind
from backup_monitor.shards import Invoker, fan_out, lambda_client
from backup_monitor.warm import WarmClients, WarmShards

logger = Logger()
tracer = Tracer()
metrics = Metrics()
copy_config_to_registered_loggers(source_logger=logger, include={"backup_monitor"})

_state: dict[str, Any] = {}


class CheckFailedError(RuntimeError):
    """The check did not complete, or some message stayed undelivered: the invocation counts as an error."""


class ShardInvocationError(RuntimeError):
    """The check of some shard could not be invoked: the invocation counts as an error."""


def _settings() -> Settings:
    if "settings" not in _state:
        _state["settings"] = Settings.from_env(os.environ)
    settings: Settings = _state["settings"]
    return settings


def _clients(shard: str | None = None) -> tuple[Settings, Clients]:
    """Settings and clients (of `shard`, when given): built at the first invocation, kept warm, rebuilt when a
    secret changes in SSM."""
    if shard is not None:
        if "shards" not in _state:
            _state["shards"] = WarmShards(_settings())
        shards: WarmShards = _state["shards"]
        return shards.current(shard)
    if "warm" not in _state:
        _state["warm"] = WarmClients(_settings())
    warm: WarmClients = _state["warm"]
    return warm.current()


def _fan_out(settings: Settings, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """One asynchronous invocation of this function per shard; an error if one could not be queued."""
    name = getattr(context, "function_name", "") or os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
    if not name:
        raise ShardInvocationError("cannot invoke the shards' checks: this function's name is unknown")
    if "lambda" not in _state:
        _state["lambda"] = lambda_client()
    client: Invoker = _state["lambda"]
    parent = event.get("id")
    result = fan_out(settings, name, client, parent_id=parent if isinstance(parent, str) else None)
    metrics.add_metric(name="ShardsInvoked", unit=MetricUnit.Count, value=len(result.invoked))
    metrics.add_metric(name="ShardInvocationsFailed", unit=MetricUnit.Count, value=len(result.failed))
    logger.info("shard checks invoked", extra={"shards": result.invoked, "failed": result.failed})
    if result.failed:
        failed = ", ".join(f"{shard} ({why})" for shard, why in result.failed.items())
        raise ShardInvocationError(f"could not invoke the check of {len(result.failed)} shard(s): {failed}")
    return {"shards": result.invoked}


def _record_metrics(summary: Summary, now: datetime) -> None:
    metrics.add_metric(name="DatabasesChecked", unit=MetricUnit.Count, value=summary.checked)
    metrics.add_metric(name="BackupsFailed", unit=MetricUnit.Count, value=summary.findings.get(Kind.FAILED.value, 0))
    metrics.add_metric(name="BackupsMissing", unit=MetricUnit.Count, value=summary.findings.get(Kind.MISSING.value, 0))
    metrics.add_metric(name="MessagesSent", unit=MetricUnit.Count, value=summary.sent)
    metrics.add_metric(name="MessagesFailed", unit=MetricUnit.Count, value=summary.undelivered + summary.given_up)
    metrics.add_metric(name="TargetsFailed", unit=MetricUnit.Count, value=len(summary.unchecked))
    metrics.add_metric(name="DatabasesLeft", unit=MetricUnit.Count, value=summary.left)
    # Coverage (issue 18): how many databases were due for a read, and how long the longest-waiting one this
    # check could not reach has waited (0 when every due database was read); the DueCheckWaitAlarm watches it.
    metrics.add_metric(name="DatabasesDue", unit=MetricUnit.Count, value=summary.due)
    metrics.add_metric(name="OldestDueMinutes", unit=MetricUnit.Count, value=round(summary.oldest_due_minutes(now), 1))
    metrics.add_metric(name="SlackRateLimited", unit=MetricUnit.Count, value=summary.rate_limited)
    metrics.add_metric(name="CannotCheckHeld", unit=MetricUnit.Count, value=summary.held)
    # The check ran, even if Slack refused messages (delivery_error, MessagesFailed); one that could reach none
    # of the databases due did not (issue 18): the heartbeat must not count it.
    if summary.error is None and not summary.reached_none:
        metrics.add_metric(name="ChecksCompleted", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context(correlation_id_path="id", log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """One scheduled (or manual) check. A manual event may name databases: {"databases": ["app/addon_id"]},
    and a shard: {"shard": "<id>"} (its id or its parameter name; needed with "databases" when there are shards).
    With shards, an event naming none starts each shard's check and returns."""
    shard = event.get("shard") if isinstance(event, dict) else None
    if shard is not None and (not isinstance(shard, str) or not shard.strip()):
        raise ValueError('"shard" must be the id of a shard (a string)')
    if shard is None and _settings().api_token_parameters:
        if isinstance(event, dict) and event.get("databases"):
            raise ValueError('"databases" needs "shard": this stack has several tokens (SCALINGO_API_TOKEN_PARAMETERS)')
        return _fan_out(_settings(), event if isinstance(event, dict) else {}, context)
    settings, clients = _clients(shard.strip() if shard is not None else None)
    only = event.get("databases") or [] if isinstance(event, dict) else []
    if not isinstance(only, list) or not all(isinstance(x, str) for x in only):
        raise ValueError('"databases" must be a list of "app/addon_id" or "region/app/addon_id" strings')
    remaining = context.get_remaining_time_in_millis() / 1000  # the time budget: what is left, less a margin
    now = datetime.now(UTC)
    summary = run_check(settings, clients, now, only=only, remaining_seconds=remaining)
    _record_metrics(summary, now)
    result = {
        **({"shard": settings.shard} if settings.shard else {}),
        "targets": summary.targets,
        "checked": summary.checked,
        "unchecked": summary.unchecked,
        "skipped": len(summary.skipped),
        "findings": dict(summary.findings),
        "sent": summary.sent,
        "undelivered": summary.undelivered,
        "left": summary.left,
        "due": summary.due,
        "not_due": summary.not_due,
        "error": summary.error,
    }
    logger.info(
        "check finished", extra={"summary": summary.line(), **{k: v for k, v in result.items() if k != "error"}}
    )
    if not summary.ok:
        raise CheckFailedError(summary.line())
    return result
