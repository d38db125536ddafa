"""A fake Slack on loopback: an incoming webhook and the Web API's chat.postMessage / chat.update."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class SlackCall:
    path: str
    body: dict[str, Any]
    status: int


@dataclass
class FakeSlack:
    """Accepts messages like Slack does; `fail_next` makes the next calls fail in a chosen way."""

    webhook_path: str = "/services/T000/B000/XXXXsecretXXXX"
    bot_token: str = "xoxb-fake-bot-token"
    calls: list[SlackCall] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)  # (http status, error) consumed one per call
    _server: ThreadingHTTPServer | None = None
    _ts: float = 1_700_000_000.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def webhook_url(self) -> str:
        return self.url + self.webhook_path

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    def fail_next(self, times: int, status: int = 500, error: str = "internal_error") -> None:
        with self._lock:
            self.failures.extend([(status, error)] * times)

    def messages(self) -> list[dict[str, Any]]:
        """Accepted posts (webhook or chat.postMessage), in order."""
        return [
            c.body
            for c in self.calls
            if c.status == 200 and not c.path.endswith("chat.update") and c.body.get("__ok", True)
        ]

    def updates(self) -> list[dict[str, Any]]:
        return [c.body for c in self.calls if c.path.endswith("chat.update") and c.status == 200]

    def start(self) -> FakeSlack:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                ctype = self.headers.get("Content-Type", "")
                if "json" in ctype:
                    body = json.loads(raw or "{}")
                else:
                    body = {k: v[0] for k, v in parse_qs(raw).items()}
                status, payload, ctype_out = fake.handle(self.path, body, self.headers.get("Authorization"))
                data = payload.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype_out)
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle(self, path: str, body: dict[str, Any], auth: str | None) -> tuple[int, str, str]:
        with self._lock:
            failure = self.failures.pop(0) if self.failures else None
            if path.startswith("/services/"):
                result = self._webhook(path, failure)
            else:
                result = self._api(path, body, auth, failure)
            record = dict(body)
            if path.startswith("/api/") and result[0] == 200 and '"ok": false' in result[1]:
                record["__ok"] = False
            self.calls.append(SlackCall(path, record, result[0]))
            return result

    def _webhook(self, path: str, failure: tuple[int, str] | None) -> tuple[int, str, str]:
        if path != self.webhook_path:
            return 404, "no_service", "text/plain"
        if failure:
            return failure[0], failure[1], "text/plain"
        return 200, "ok", "text/plain"

    def _api(
        self, path: str, body: dict[str, Any], auth: str | None, failure: tuple[int, str] | None
    ) -> tuple[int, str, str]:
        if auth != f"Bearer {self.bot_token}":
            return 200, json.dumps({"ok": False, "error": "invalid_auth"}), "application/json"
        if failure:
            if failure[0] == 200:
                return 200, json.dumps({"ok": False, "error": failure[1]}), "application/json"
            return failure[0], json.dumps({"ok": False, "error": failure[1]}), "application/json"
        if path.endswith("/chat.postMessage"):
            self._ts += 1
            return (
                200,
                json.dumps({"ok": True, "channel": body.get("channel"), "ts": f"{self._ts:.6f}"}),
                ("application/json"),
            )
        if path.endswith("/chat.update"):
            return (
                200,
                json.dumps({"ok": True, "channel": body.get("channel"), "ts": body.get("ts")}),
                ("application/json"),
            )
        return 404, json.dumps({"ok": False, "error": "unknown_method"}), "application/json"


def wait_until(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False
