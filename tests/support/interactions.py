"""Slack interactivity requests as Slack makes them (tests and the endpoint benchmark): a `block_actions`
payload, form-encoded, signed v0:timestamp:body with HMAC-SHA256 and the app's signing secret; and
`backup-monitor serve` in a subprocess."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[2]
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def click_body(
    action: str,
    value: str,
    response_url: str,
    *,
    user: str = "U0ONCALL",
    blocks: list[dict[str, Any]] | None = None,
    text: str = "Backup failed",
) -> bytes:
    """The body Slack posts when `user` clicks a button (action id, value) on a message."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": "oncall", "team_id": "T000"},
        "team": {"id": "T000", "domain": "fake"},
        "channel": {"id": "C0ALERTS", "name": "alerts"},
        "message": {"type": "message", "ts": "1700000001.000000", "text": text, "blocks": blocks or []},
        "response_url": response_url,
        "trigger_id": "1.2.3",
        "actions": [{"type": "button", "action_id": action, "value": value, "block_id": "b", "action_ts": "1"}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def signed_headers(body: bytes, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Slack's headers for `body`: X-Slack-Request-Timestamp and X-Slack-Signature (v0=HMAC-SHA256)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature,
    }


def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float = 10.0) -> tuple[int, bytes]:
    """POST over real HTTP: (status, body)."""
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@contextmanager
def serving(env: Mapping[str, str]) -> Iterator[str]:
    """`backup-monitor serve --port 0` in a subprocess with `env`: the URL of its endpoint; stopped by SIGTERM
    at the end (and it must exit 0)."""
    full = {**env, "PYTHONPATH": str(ROOT / "functions/backup_monitor")}
    process = subprocess.Popen(
        [sys.executable, "-m", "backup_monitor.cli", "serve", "--port", "0"],
        env=full,
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert process.stderr is not None
    try:
        line = process.stderr.readline()
        found = re.search(r"listening on (http://\S+)", line)
        if found is None:
            rest = process.stderr.read() if process.poll() is not None else ""
            raise AssertionError(f"serve did not start: {line}{rest}")
        yield found.group(1)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        assert code == 0, process.stderr.read()
