"""Lambda handler of the Slack interactivity endpoint, behind a Function URL (payload format 2.0: headers in
lower case, the body possibly base64, `isBase64Encoded`). The same code as `backup-monitor serve`
(backup_monitor.interactions); the endpoint is built at the first request and kept while the container is warm
(secrets re-read after their cache age)."""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from backup_monitor.config import Settings
from backup_monitor.interactions import MAX_BODY_BYTES, Endpoint, build_endpoint
from backup_monitor.serve import PATH

logger = Logger()
copy_config_to_registered_loggers(source_logger=logger, include={"backup_monitor"})

_state: dict[str, Endpoint] = {}


def _endpoint() -> Endpoint:
    if "endpoint" not in _state:
        _state["endpoint"] = build_endpoint(Settings.from_env(os.environ))
    return _state["endpoint"]


def _answer(status: int, text: str = "", headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": headers or {"content-type": "text/plain; charset=utf-8"},
        "body": text,
        "isBase64Encoded": False,
    }


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """One Slack interactivity request (a Function URL event)."""
    http = (event.get("requestContext") or {}).get("http") or {}
    if event.get("rawPath") != PATH:
        return _answer(404, "not found\n")
    if http.get("method") != "POST":
        return _answer(405, "POST Slack's interaction requests here\n")
    raw = event.get("body") or ""
    if not isinstance(raw, str) or len(raw) > MAX_BODY_BYTES * 4 // 3 + 4:
        return _answer(413, "request too large\n")
    if event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return _answer(400, "the body is not base64\n")
    else:
        body = raw.encode("utf-8")
    headers = {str(k): str(v) for k, v in (event.get("headers") or {}).items()}
    response = _endpoint().handle(headers, body)
    return _answer(response.status, response.body.decode("utf-8", "replace"), dict(response.headers))
