"""A fake Slack on loopback: an incoming webhook and the Web API's chat.postMessage / chat.update.

It refuses what Slack refuses, with Slack's status and body:
- malformed blocks (slack-sdk's own Block Kit models and validators: unknown types or properties, a section's text
  over 3,000 characters, a button's text over 75 or URL over 3,000, ...), an empty text object, more than 50
  blocks: `invalid_blocks`; blocks that are not a list: `invalid_blocks_format`;
- blocks carrying more than 12,000 characters of text in all: `msg_blocks_too_long` (Slack's limit is
  undocumented; it was seen refusing around 12,000 to 13,000);
- a `text` over 40,000 characters: `msg_too_long`; nothing to show: `no_text`;
- a webhook URL that does not exist: 404 `no_service`; a bad bot token: `invalid_auth`; an edit of a message it
  never posted: `message_not_found`.
The Web API answers HTTP 200 with `{"ok": false, "error": ...}`; the webhook answers 400 (403, 404, 410) with the
error string as a plain-text body. `fail_next` injects other answers (outages, revoked destinations).

Optional, as a bad night brings them:
- `rate_per_channel`: Slack's one message a second per channel, enforced: a post to a channel (a webhook's is its
  own) sooner than that after the last accepted one answers 429 with `Retry-After: retry_after`;
- `archived`: channels that answer `is_archived`;
- `reset_after_accept`: the next N accepted posts are recorded, then the connection is closed without an answer
  (Slack took the message, the sender cannot know); `slow_after_accept`: the answer comes after that many seconds.
`auth.test` answers with the workspace URL (`https://fake-workspace.slack.com/`).

For the buttons (issue 20):
- `response_url(id)`: a click's response_url, `POST /response/<id>`: the payload is checked like a message
  (`refusal`; 404 `expired_url` for an id never handed out) and recorded; `responses(id)` lists what it received;
- `usergroups.users.list` (bot token, GET or POST, `usergroup=S…`): the members given by `add_usergroup`,
  `no_such_subteam` otherwise.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block

BLOCKS_MAX = 50
BLOCK_TEXT_MAX = 12_000
TEXT_MAX = 40_000
SECTION_TEXT_MAX = 3000


@dataclass
class SlackCall:
    path: str
    body: dict[str, Any]
    status: int
    received_at: float = field(default_factory=time.monotonic)


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _strings(node: Any, keys: tuple[str, ...] = ("text", "url")) -> list[str]:
    """Every string under one of `keys`, anywhere in a block tree."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str) and key in keys:
                found.append(value)
            else:
                found.extend(_strings(value, keys))
    elif isinstance(node, list):
        for item in node:
            found.extend(_strings(item, keys))
    return found


def _empty_text_objects(node: Any, pointer: str) -> list[str]:
    errors: list[str] = []
    if isinstance(node, dict):
        if node.get("type") in ("mrkdwn", "plain_text") and not node.get("text"):
            errors.append(f"must be more than 0 characters [json-pointer:{pointer}/text]")
        for key, value in node.items():
            errors.extend(_empty_text_objects(value, f"{pointer}/{key}"))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            errors.extend(_empty_text_objects(item, f"{pointer}/{i}"))
    return errors


def refusal(body: dict[str, Any]) -> tuple[str, list[str]] | None:
    """Why Slack would refuse this message body: (error, details), or None when it would post it."""
    text = body.get("text")
    blocks = body.get("blocks")
    if isinstance(blocks, str):  # form-encoded bodies carry blocks as a JSON string
        try:
            blocks = json.loads(blocks)
        except ValueError:
            return "invalid_blocks_format", ["blocks is not valid JSON"]
    if blocks is not None and not isinstance(blocks, list):
        return "invalid_blocks_format", ["blocks must be an array"]
    if not text and not blocks and not body.get("attachments"):
        return "no_text", []
    if isinstance(text, str) and _units(text) > TEXT_MAX:
        return "msg_too_long", []
    if not blocks:
        return None
    errors: list[str] = []
    if len(blocks) > BLOCKS_MAX:
        errors.append(f"no more than {BLOCKS_MAX} items allowed [json-pointer:/blocks]")
    for i, raw in enumerate(blocks):
        where = f"[json-pointer:/blocks/{i}]"
        if not isinstance(raw, dict):
            errors.append(f"expected an object {where}")
            continue
        parsed = Block.parse(raw)
        if parsed is None:
            errors.append(f"unsupported type: {raw.get('type')!r} {where}")
            continue
        try:
            if parsed.to_dict() != raw:
                errors.append(f"must provide valid properties only {where}")
        except SlackObjectFormationError as exc:
            errors.append(f"{exc} {where}")
        errors.extend(_empty_text_objects(raw, f"/blocks/{i}"))
        section_text = raw.get("text") if raw.get("type") == "section" else None
        if isinstance(section_text, dict) and _units(str(section_text.get("text", ""))) > SECTION_TEXT_MAX:
            errors.append(f"must be less than {SECTION_TEXT_MAX + 1} characters {where}")
    if errors:
        return "invalid_blocks", errors
    if sum(_units(s) for s in _strings(blocks)) > BLOCK_TEXT_MAX:
        return "msg_blocks_too_long", []
    return None


@dataclass
class FakeSlack:
    """Accepts messages like Slack does; `fail_next` makes the next calls fail in a chosen way."""

    webhook_path: str = "/services/T000/B000/XXXXsecretXXXX"
    bot_token: str = "xoxb-fake-bot-token"
    calls: list[SlackCall] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)  # (http status, error) consumed one per call
    failure_paths: list[str | None] = field(default_factory=list)  # the method each failure is for (None: any)
    posted: dict[str, str] = field(default_factory=dict)  # ts -> channel of every accepted chat.postMessage
    rate_per_channel: float | None = None  # seconds between two posts to one channel, or no limit
    retry_after: float = 1.0
    archived: set[str] = field(default_factory=set)
    reset_after_accept: int = 0
    slow_after_accept: float = 0.0
    workspace_url: str = "https://fake-workspace.slack.com/"
    usergroups: dict[str, list[str]] = field(default_factory=dict)
    _responses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _last_post: dict[str, float] = field(default_factory=dict)
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

    def response_url(self, response_id: str) -> str:
        """A click's response_url (what Slack puts in a block_actions payload)."""
        with self._lock:
            self._responses.setdefault(response_id, [])
        return f"{self.url}/response/{response_id}"

    def responses(self, response_id: str) -> list[dict[str, Any]]:
        """The payloads accepted on that response_url, in order."""
        with self._lock:
            return list(self._responses.get(response_id, []))

    def all_responses(self) -> list[tuple[str, dict[str, Any]]]:
        """Every payload accepted on any response_url: (its id, the payload)."""
        with self._lock:
            return [(rid, payload) for rid, payloads in self._responses.items() for payload in payloads]

    def add_usergroup(self, group_id: str, users: list[str]) -> None:
        with self._lock:
            self.usergroups[group_id] = list(users)

    def fail_next(self, times: int, status: int = 500, error: str = "internal_error", only: str | None = None) -> None:
        """The next `times` calls (to paths ending with `only`, if given) answer `status` with `error`."""
        with self._lock:
            self.failures.extend([(status, error)] * times)
            self.failure_paths.extend([only] * times)

    def messages(self) -> list[dict[str, Any]]:
        """Accepted posts (webhook or chat.postMessage), in order."""
        return [c.body for c in self.calls if _is_post(c.path) and c.status == 200 and c.body.get("__ok", True)]

    def refused(self) -> list[dict[str, Any]]:
        """Posts Slack did not accept, in order."""
        return [c.body for c in self.calls if _is_post(c.path) and (c.status != 200 or not c.body.get("__ok", True))]

    def rate_limited(self) -> int:
        """How many calls were answered 429."""
        return sum(1 for c in self.calls if c.status == 429)

    def mentions(self, mention: str = "<!here>") -> int:
        """Accepted posts whose notification text carries `mention`."""
        return sum(1 for m in self.messages() if mention in str(m.get("text", "")))

    def updates(self) -> list[dict[str, Any]]:
        return [c.body for c in self.calls if c.path.endswith("chat.update") and c.status == 200 and c.body["__ok"]]

    def start(self) -> FakeSlack:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body in two writes: no 40 ms Nagle/delayed-ACK stall

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                ctype = self.headers.get("Content-Type", "")
                if "json" in ctype:
                    try:
                        body = json.loads(raw or "{}")
                    except ValueError:
                        body = {"__invalid_json": raw[:100]}
                else:
                    body = {k: v[0] for k, v in parse_qs(raw).items()}
                self._answer(body)

            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                self.path = path
                self._answer({k: v[0] for k, v in parse_qs(query).items()})

            def _answer(self, body: dict[str, Any]) -> None:
                status, payload, ctype_out = fake.handle(self.path, body, self.headers.get("Authorization"))
                if status == 200 and fake._take_reset():
                    self.close_connection = True  # accepted, then the connection drops: no answer at all
                    self.connection.shutdown(2)
                    return
                if status == 200 and fake.slow_after_accept:
                    time.sleep(fake.slow_after_accept)
                data = payload.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype_out)
                if status == 429:
                    self.send_header("Retry-After", f"{fake.retry_after:g}")
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

    def _take_reset(self) -> bool:
        with self._lock:
            if self.reset_after_accept <= 0:
                return False
            self.reset_after_accept -= 1
            return True

    def _paced(self, channel: str) -> bool:
        """Whether a post to `channel` now stays within `rate_per_channel` (and, if so, counts it)."""
        if self.rate_per_channel is None:
            return True
        now = time.monotonic()
        last = self._last_post.get(channel)
        if last is not None and now - last < self.rate_per_channel:
            return False
        self._last_post[channel] = now
        return True

    def _take_failure(self, path: str) -> tuple[int, str] | None:
        for i, only in enumerate(self.failure_paths):
            if only is None or path.endswith(only):
                self.failure_paths.pop(i)
                return self.failures.pop(i)
        return None

    def handle(self, path: str, body: dict[str, Any], auth: str | None) -> tuple[int, str, str]:
        with self._lock:
            failure = self._take_failure(path)
            if path.startswith("/services/"):
                result = self._webhook(path, body, failure)
            elif path.startswith("/response/"):
                result = self._response(path, body, failure)
            else:
                result = self._api(path, body, auth, failure)
            record = dict(body)
            record["__ok"] = result[0] == 200 and not (path.startswith("/api/") and '"ok": false' in result[1])
            self.calls.append(SlackCall(path, record, result[0]))
            return result

    def _webhook(self, path: str, body: dict[str, Any], failure: tuple[int, str] | None) -> tuple[int, str, str]:
        if path != self.webhook_path:
            return 404, "no_service", "text/plain"
        if failure:
            return failure[0], failure[1], "text/plain"
        if "__invalid_json" in body:
            return 400, "invalid_payload", "text/plain"
        refused = refusal(body)
        if refused:
            return 400, refused[0], "text/plain"
        if not self._paced(path):
            return 429, "rate_limited", "text/plain"
        return 200, "ok", "text/plain"

    def _response(self, path: str, body: dict[str, Any], failure: tuple[int, str] | None) -> tuple[int, str, str]:
        """A response_url: Slack answers `{"ok": true}`, or an error (HTTP 4xx) for a payload it refuses."""
        answers = self._responses.get(path.removeprefix("/response/"))
        if answers is None:
            return 404, json.dumps({"ok": False, "error": "expired_url"}), "application/json"
        if failure:
            return failure[0], json.dumps({"ok": False, "error": failure[1]}), "application/json"
        if "__invalid_json" in body:
            return 400, json.dumps({"ok": False, "error": "invalid_payload"}), "application/json"
        refused = refusal(body)
        if refused:
            return 400, json.dumps({"ok": False, "error": refused[0], "errors": refused[1]}), "application/json"
        answers.append(body)
        return 200, json.dumps({"ok": True}), "application/json"

    def _api(
        self, path: str, body: dict[str, Any], auth: str | None, failure: tuple[int, str] | None
    ) -> tuple[int, str, str]:
        if auth != f"Bearer {self.bot_token}":
            return _api_error("invalid_auth")
        if failure:
            return failure[0], json.dumps({"ok": False, "error": failure[1]}), "application/json"
        if path.endswith("/auth.test"):
            answer = {"ok": True, "url": self.workspace_url, "team": "Fake", "user": "backups", "user_id": "U0BOT"}
            return 200, json.dumps(answer), "application/json"
        if path.endswith("/usergroups.users.list"):
            members = self.usergroups.get(str(body.get("usergroup", "")))
            if members is None:
                return _api_error("no_such_subteam")
            return 200, json.dumps({"ok": True, "users": members}), "application/json"
        if not path.endswith(("/chat.postMessage", "/chat.update")):
            return 404, json.dumps({"ok": False, "error": "unknown_method"}), "application/json"
        if not body.get("channel"):
            return _api_error("channel_not_found")
        if str(body["channel"]) in self.archived:
            return _api_error("is_archived")
        refused = refusal(body)
        if refused:
            return _api_error(*refused)
        if path.endswith("/chat.postMessage") and not self._paced(str(body["channel"])):
            return 429, json.dumps({"ok": False, "error": "ratelimited"}), "application/json"
        if path.endswith("/chat.update"):
            if self.posted.get(str(body.get("ts"))) != body.get("channel"):
                return _api_error("message_not_found")
            return 200, json.dumps({"ok": True, "channel": body["channel"], "ts": body["ts"]}), "application/json"
        self._ts += 1
        ts = f"{self._ts:.6f}"
        self.posted[ts] = str(body["channel"])
        return 200, json.dumps({"ok": True, "channel": body["channel"], "ts": ts}), "application/json"


def _is_post(path: str) -> bool:
    """A message post: the webhook, or chat.postMessage (not chat.update, not auth.test)."""
    return path.startswith("/services/") or path.endswith("/chat.postMessage")


def _api_error(error: str, details: list[str] | None = None) -> tuple[int, str, str]:
    body: dict[str, Any] = {"ok": False, "error": error}
    if details:
        body["errors"] = details
        body["response_metadata"] = {"messages": [f"[ERROR] {d}" for d in details]}
    return 200, json.dumps(body), "application/json"


def wait_until(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False
