"""The Slack interactivity endpoint (issue 20): one request (headers and raw body) in, (status, headers, body) out.

Shared by `backup-monitor serve` (serve.py) and the Lambda behind a Function URL (interactions_app.py).

1. Slack's signature (`X-Slack-Signature`, `X-Slack-Request-Timestamp` within 5 minutes, compared in constant
   time: slack-sdk's SignatureVerifier) with the app's signing secret; anything else is a 401 and changes nothing.
2. Replay protection: a signature is accepted once. Its SHA-256 is created in the state store with a 5-minute
   expiry, conditionally (absent or expired): of two deliveries of one request, one acts, the other gets a 401.
3. The `payload` (form-encoded JSON, `block_actions`): Acknowledge, Silence 24 h, Unsilence, Get download link.
   The clicked message is edited, or the clicker answered (ephemeral), through the payload's `response_url`.

Slack waits 3 seconds: the whole request has BUDGET_SECONDS, and every call out (state store, Scalingo, Slack)
ends by a deadline inside it; when Scalingo is too slow, the clicker is told to try again. The signing secret,
the signature, response_url and download links are never logged nor echoed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import parse_qs, urlencode, urlsplit

from slack_sdk.signature import Clock, SignatureVerifier

from backup_monitor import interactions_ui as ui
from backup_monitor.config import ConfigError, Settings, Target, is_loopback
from backup_monitor.scalingo.client import ScalingoClient, build_session
from backup_monitor.scalingo.errors import AuthenticationError, NotFoundError, OutOfTimeError, ScalingoError
from backup_monitor.scalingo.tokens import TokenCache
from backup_monitor.silences import SilenceError
from backup_monitor.state.base import Blob, ConflictError, StateError, StateStore
from backup_monitor.state.silences import (
    UnknownSilenceError,
    acknowledge_incident,
    active_silences,
    add_silence,
    remove_silence,
)
from backup_monitor.state.tokens import restore_tokens, token_keys

logger = logging.getLogger(__name__)

BUDGET_SECONDS = 2.5  # of Slack's 3 seconds: the rest for the network and a cold start's margin
REPLY_RESERVE_SECONDS = 0.4  # kept for the response_url post after Scalingo's answer
SIGNATURE_MAX_AGE_SECONDS = 300  # slack-sdk's window; a seen signature is remembered this long
MAX_BODY_BYTES = 256 * 1024  # a block_actions payload carries the clicked message: at most ~50 KB in practice
SEEN_KEY_PREFIX = "__slack_seen__/"
SILENCE_DURATION = timedelta(hours=24)
SILENCE_REASON = "silenced from Slack"
GROUP_CACHE_SECONDS = 300.0
SLACK_API_URL = "https://slack.com/api/"
JSON_HEADERS = {"Content-Type": "application/json"}
TEXT_HEADERS = {"Content-Type": "text/plain; charset=utf-8"}


class OnceStore(StateStore, Protocol):
    """A state store that can create a blob only if it is absent or expired (SQLite and DynamoDB stores)."""

    def create_blob(self, blob: Blob, now: float) -> bool: ...


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes = b""


def _text(status: int, text: str) -> Response:
    return Response(status, TEXT_HEADERS, text.encode())


UNAUTHORIZED = _text(401, "invalid or replayed Slack signature\n")


@dataclass(frozen=True, slots=True)
class Click:
    """One button click, as the payload says it."""

    user: str
    action: str
    value: str
    response_url: str
    blocks: list[dict[str, Any]]
    text: str


class Deadline:
    """The request's end (time.monotonic)."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self, reserve: float = 0.0) -> float:
        return self.end - reserve - time.monotonic()


class _FixedClock(Clock):
    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()


@dataclass
class _Groups:
    """Members of Slack user groups, cached a few minutes."""

    members: dict[str, tuple[float, frozenset[str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Endpoint:
    """Handles Slack interactivity requests for these settings (secrets resolved, or readable via `secret`)."""

    def __init__(
        self,
        settings: Settings,
        store: OnceStore,
        signing_secret: Callable[[bool], str],
        *,
        resolve: Callable[[Settings], Settings] | None = None,
        clock: Callable[[], float] = time.time,
        budget: float = BUDGET_SECONDS,
    ) -> None:
        """`signing_secret(force)`: the signing secret (force: read it again, it may have been rotated).
        `resolve(settings)`: the settings with their Scalingo API token read (from SSM), for a download link."""
        self.settings = settings
        self.store = store
        self._secret = signing_secret
        self._resolve = resolve or (lambda one: one)
        self._clock = clock
        self.budget = budget
        self._tokens: dict[str, TokenCache] = {}
        self._tokens_lock = threading.Lock()
        self._groups = _Groups()
        self._session = build_session(retries=0, pool_size=8)

    # -- the request ----------------------------------------------------------------------------------------

    def handle(self, headers: Mapping[str, str], body: bytes) -> Response:
        deadline = Deadline(self.budget)
        if len(body) > MAX_BODY_BYTES:
            return _text(413, "request too large\n")
        lowered = {k.lower(): v for k, v in headers.items()}
        timestamp = lowered.get("x-slack-request-timestamp")
        signature = lowered.get("x-slack-signature")
        if not timestamp or not signature or not self._signed(body, timestamp, signature):
            logger.warning("Slack request refused: bad or missing signature, or timestamp outside 5 minutes")
            return UNAUTHORIZED
        try:
            click = parse_click(body)
        except ValueError as exc:
            logger.warning("signed Slack request not understood", extra={"problem": str(exc)})
            return _text(400, "not a block_actions payload with one button\n")
        try:
            first = self._first_time(signature, int(timestamp))
        except StateError as exc:
            logger.error("cannot record the Slack request: nothing done", extra={"error": str(exc)})
            self._reply(click, ui.refusal_reply(STATE_DOWN), deadline)
            return Response(200, TEXT_HEADERS)
        if not first:
            logger.warning("Slack request refused: this signature was seen already (a replay)")
            return UNAUTHORIZED
        self._dispatch(click, deadline)
        return Response(200, TEXT_HEADERS)

    def _signed(self, body: bytes, timestamp: str, signature: str) -> bool:
        try:
            int(timestamp)
            body.decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return False
        for force in (False, True):
            try:
                secret = self._secret(force)
            except ConfigError as exc:
                logger.error("the signing secret cannot be read", extra={"error": str(exc)})
                return False
            verifier = SignatureVerifier(secret, _FixedClock(self._clock))
            if verifier.is_valid(body, timestamp, signature):
                return True
            if abs(self._clock() - int(timestamp)) > SIGNATURE_MAX_AGE_SECONDS:
                return False  # too old: a newer secret would not change that
        return False

    def _first_time(self, signature: str, timestamp: int) -> bool:
        """Whether this signature is seen for the first time; it is remembered for as long as its timestamp keeps
        it valid (until timestamp + 5 minutes, and one second more for rounding), however far that timestamp is
        ahead of or behind this clock."""
        now = self._clock()
        digest = hashlib.sha256(signature.encode()).hexdigest()
        until = max(now, timestamp + SIGNATURE_MAX_AGE_SECONDS + 1)
        blob = Blob(SEEN_KEY_PREFIX + digest, str(int(now)), until)
        return self.store.create_blob(blob, now)

    # -- the actions ----------------------------------------------------------------------------------------

    def _dispatch(self, click: Click, deadline: Deadline) -> None:
        try:
            value = ui.ButtonValue.decode(click.value)
        except ValueError:
            self._reply(click, ui.refusal_reply(MALFORMED), deadline)
            return
        now = datetime.fromtimestamp(self._clock(), UTC).replace(microsecond=0)
        actions: dict[str, Callable[[Click, ui.ButtonValue, datetime, Deadline], dict[str, Any]]] = {
            ui.ACTION_ACK: self._acknowledge,
            ui.ACTION_SILENCE: self._silence,
            ui.ACTION_UNSILENCE: self._unsilence,
            ui.ACTION_DOWNLOAD: self._download,
        }
        act = actions.get(click.action)
        if act is None:
            self._reply(click, ui.refusal_reply(UNKNOWN_BUTTON), deadline)
            return
        try:
            reply = act(click, value, now, deadline)
        except ConflictError:
            reply = ui.refusal_reply(BUSY)
        except StateError as exc:
            logger.error("the state store failed during a click", extra={"error": str(exc)})
            reply = ui.refusal_reply(STATE_DOWN)
        logger.info("Slack click handled", extra={"action": click.action, "user": click.user, "key": value.key})
        self._reply(click, reply, deadline)

    def _acknowledge(self, click: Click, value: ui.ButtonValue, now: datetime, deadline: Deadline) -> dict[str, Any]:
        if not value.incident:
            return ui.refusal_reply(MALFORMED)
        try:
            acknowledge_incident(self.store, value.key, value.incident, click.user, now)
        except KeyError:
            return ui.refusal_reply(
                "This incident is no longer open (it was resolved): there is nothing to acknowledge."
            )
        except SilenceError:
            return ui.refusal_reply(MALFORMED)
        return ui.acknowledged_message(click.blocks, click.text, click.user, now)

    def _silence(self, click: Click, value: ui.ButtonValue, now: datetime, deadline: Deadline) -> dict[str, Any]:
        try:
            # one button silence per database: a second click (on another message about it) shows the first,
            # so that one Unsilence ends it
            existing = [s for s in active_silences(self.store, now) if s.pattern == value.key]
            if existing:
                silence = existing[0]
            else:
                silence = add_silence(self.store, value.key, SILENCE_DURATION, SILENCE_REASON, click.user, now)
        except SilenceError as exc:
            return ui.refusal_reply(f"This database cannot be silenced: {exc}.")
        return ui.silenced_message(click.blocks, click.text, click.user, silence.until, silence.id)

    def _unsilence(self, click: Click, value: ui.ButtonValue, now: datetime, deadline: Deadline) -> dict[str, Any]:
        if not value.silence:
            return ui.refusal_reply(MALFORMED)
        try:
            remove_silence(self.store, value.silence, click.user, now)
        except UnknownSilenceError:
            return ui.refusal_reply("This silence is gone already (it ended more than a week ago).")
        # and any other silence of this very database set by a button (two clicks at once): Unsilence means
        # unsilenced; silences on app patterns (from the command line) are left to `backup-monitor unsilence`
        for other in active_silences(self.store, now):
            if other.pattern == value.key and other.id != value.silence:
                with suppress(UnknownSilenceError):
                    remove_silence(self.store, other.id, click.user, now)
        return ui.unsilenced_message(click.blocks, click.text, click.user, now)

    def _download(self, click: Click, value: ui.ButtonValue, now: datetime, deadline: Deadline) -> dict[str, Any]:
        if not value.backup:
            return ui.refusal_reply(MALFORMED)
        if not self.settings.download_links:  # an old button, from before DOWNLOAD_LINKS was turned off
            return ui.refusal_reply("Download links are turned off for this monitor (DOWNLOAD_LINKS=false).")
        why_not = self._may_download(click.user, deadline)
        if why_not:
            return ui.refusal_reply(why_not)
        found = find_target(self.settings, self.store, value.key)
        if found is None:
            return ui.refusal_reply(
                "The monitor does not watch this database any more, so it cannot ask Scalingo for its backups."
            )
        target, settings = found
        try:
            settings = self._resolve(settings)
        except ConfigError as exc:
            logger.error("the Scalingo API token cannot be read", extra={"error": str(exc)})
            return ui.refusal_reply("The monitor cannot read its Scalingo API token: tell whoever runs the monitor.")
        try:
            link = self._archive_link(settings, target, value.backup, deadline)
        except (OutOfTimeError, TimeoutError):
            return ui.refusal_reply(SCALINGO_SLOW)
        except NotFoundError:
            return ui.refusal_reply("Scalingo no longer has this backup (or its database): no link can be made.")
        except AuthenticationError:
            return ui.refusal_reply(
                "Scalingo refused the monitor's API token: tell whoever runs the monitor (no link was made)."
            )
        except ScalingoError as exc:
            if "in time" in str(exc) or "no time left" in str(exc):
                return ui.refusal_reply(SCALINGO_SLOW)
            logger.warning("no archive link", extra={"key": target.key, "error": str(exc)})
            return ui.refusal_reply("Scalingo could not make a download link just now: try again in a minute.")
        name = f"{target.app} ({target.addon_id}), backup {value.backup}"
        return ui.download_reply(link, name, "a fresh link from Scalingo, valid for a short while: open it now")

    def _archive_link(self, settings: Settings, target: Target, backup_id: str, deadline: Deadline) -> str:
        left = deadline.left(REPLY_RESERVE_SECONDS)
        if left <= 0.05:
            raise OutOfTimeError("no time left")
        client = ScalingoClient.from_settings(settings, session=self._session)
        with self._tokens_lock:  # the exchanged tokens are kept between clicks (per API token)
            cache = self._tokens.get(settings.shard)
            fresh = cache is None
            if cache is None:
                cache = self._tokens[settings.shard] = client.tokens
        client.tokens = cache
        if fresh or client.needs_token(target):  # the tokens the checks stored (sealed): fewer calls to Scalingo
            with suppress(StateError):
                blobs = self.store.load_blobs(token_keys([target.key], settings.shard))
                restore_tokens(blobs.values(), cache, client.sealer, settings.shard)
        client.begin_check(time.monotonic() + left, grace=0.0)
        return client.archive_link(target, backup_id)

    def _may_download(self, user: str, deadline: Deadline) -> str | None:
        """Why `user` may not get a link (None: they may)."""
        allowed = self.settings.download_allowed_users
        if not allowed or user in allowed:
            return None
        try:
            token = self._resolve(self.settings).slack_bot_token
        except ConfigError as exc:
            logger.error("the Slack bot token cannot be read", extra={"error": str(exc)})
            token = None
        groups = [one for one in allowed if one.startswith("S")]
        for group in groups:
            try:
                if user in self._members(group, token, deadline):
                    return None
            except (OSError, ValueError) as exc:
                logger.warning("cannot read a user group's members", extra={"group": group, "error": str(exc)})
                return "The monitor could not check the allowed user group just now: try again in a minute."
        return (
            "You are not among the people allowed to get download links (DOWNLOAD_ALLOWED_USERS): "
            "ask whoever runs the monitor to add you or your user group."
        )

    def _members(self, group: str, token: str | None, deadline: Deadline) -> frozenset[str]:
        now = time.monotonic()
        with self._groups.lock:
            cached = self._groups.members.get(group)
        if cached is not None and now - cached[0] < GROUP_CACHE_SECONDS:
            return cached[1]
        if not token:
            raise ValueError("no bot token to read user groups with")
        base = (self.settings.slack_api_url or SLACK_API_URL).rstrip("/")
        request = urllib.request.Request(  # noqa: S310 (https://slack.com, or SLACK_API_URL)
            f"{base}/usergroups.users.list",
            data=urlencode({"usergroup": group}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-www-form-urlencoded"},
            method="POST",
        )
        timeout = max(0.1, deadline.left(REPLY_RESERVE_SECONDS + 0.8))
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            data = json.loads(answer.read(1_000_000))
        if not isinstance(data, dict) or not data.get("ok") or not isinstance(data.get("users"), list):
            raise ValueError(f"Slack answered {str(data.get('error') if isinstance(data, dict) else 'badly')[:60]}")
        members = frozenset(str(u) for u in data["users"])
        with self._groups.lock:
            self._groups.members[group] = (now, members)
        return members

    # -- the answer -----------------------------------------------------------------------------------------

    def _reply(self, click: Click, payload: dict[str, Any], deadline: Deadline) -> None:
        """Post `payload` to the click's response_url, within what is left of the budget."""
        if not response_url_ok(click.response_url):
            logger.warning("the payload's response_url is not Slack's: no answer sent")
            return
        request = urllib.request.Request(  # noqa: S310 (checked: https on Slack's hosts, or loopback)
            click.response_url, data=json.dumps(payload).encode(), headers=dict(JSON_HEADERS), method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=max(0.1, deadline.left())) as answer:  # noqa: S310
                answer.read(10_000)
        except (OSError, urllib.error.URLError) as exc:
            host = urlsplit(click.response_url).hostname
            logger.warning("the answer to Slack failed", extra={"host": host, "error": type(exc).__name__})


NOT_OPEN = "This incident is no longer open (it was resolved): there is nothing to acknowledge."
MALFORMED = "This button's value cannot be read (an old or altered message?): nothing was done."
UNKNOWN_BUTTON = "This button is not one of the backup monitor's: nothing was done."
BUSY = "A check is writing this database's state right now: nothing was done yet, try again in a minute."
STATE_DOWN = "The monitor's state store cannot be reached just now: nothing was done, try again in a minute."
SCALINGO_SLOW = "Scalingo did not answer in time: no link was made, try again in a moment."


def parse_click(body: bytes) -> Click:
    """The click of a signed body; ValueError when it is not one block_actions payload with one action."""
    form = parse_qs(body.decode("utf-8"), max_num_fields=10, strict_parsing=False)
    raw = form.get("payload")
    if not raw or len(raw) != 1:
        raise ValueError("no payload field")
    try:
        payload = json.loads(raw[0])
    except (ValueError, RecursionError):
        raise ValueError("the payload is not JSON") from None
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        raise ValueError("not a block_actions payload")
    user = payload.get("user")
    actions = payload.get("actions")
    response_url = payload.get("response_url")
    if not isinstance(user, dict) or not isinstance(user.get("id"), str) or not user["id"]:
        raise ValueError("no user id")
    if not isinstance(actions, list) or len(actions) != 1 or not isinstance(actions[0], dict):
        raise ValueError("not one action")
    action, value = actions[0].get("action_id"), actions[0].get("value")
    if not isinstance(action, str) or not isinstance(value, str):
        raise ValueError("an action without an id or value")
    if not isinstance(response_url, str):
        raise ValueError("no response_url")
    message = payload.get("message")
    message = message if isinstance(message, dict) else {}
    blocks = message.get("blocks")
    blocks = [b for b in blocks if isinstance(b, dict)] if isinstance(blocks, list) else []
    text = message.get("text")
    text = text if isinstance(text, str) else ""
    return Click(user["id"], action, value, response_url, blocks, text)


def response_url_ok(url: str) -> bool:
    """Slack's own response URLs (https on slack.com), or a loopback one (the tests' fake Slack)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and (host == "hooks.slack.com" or host.endswith(".slack.com")):
        return True
    return parts.scheme in ("http", "https") and is_loopback(host)


def find_target(settings: Settings, store: StateStore, key: str) -> tuple[Target, Settings] | None:
    """The database of state key `key` and the settings of the token watching it (a shard's, with
    SCALINGO_API_TOKEN_PARAMETERS), if this monitor watches it: MONITORED_DATABASES, or the cached discovery of
    each shard, less EXCLUDE_APPS. None otherwise."""
    from backup_monitor.check.targets import discovery_key, target_from_name
    from backup_monitor.state.chunks import load_record

    if settings.monitored:
        found = next((t for t in settings.monitored if t.key == key), None)
        return (found, settings) if found is not None else None
    each = [settings.for_shard(s) for s in settings.shards] if settings.api_token_parameters else [settings]
    for one in each:
        record = load_record(store, discovery_key(one), unreadable={})
        for name in record.discovered if record is not None else ():
            target = target_from_name(name)
            if target.key == key and not one.excluded(target.app):
                return target, one
    return None


ENDPOINT_STORE_TIMEOUT_SECONDS = 1.0


def signing_secret_source(settings: Settings) -> Callable[[bool], str]:
    """How the endpoint reads the signing secret: SLACK_SIGNING_SECRET in clear (the command), or the SSM
    parameter SLACK_SIGNING_SECRET_PARAMETER (cached; `force` re-reads it, at most every 30 s: a rotated
    secret). ConfigError when neither is set."""
    if settings.slack_signing_secret:
        secret = settings.slack_signing_secret
        return lambda force: secret
    name = settings.slack_signing_secret_parameter
    if not name:
        raise ConfigError(
            "SLACK_SIGNING_SECRET",
            "is not set (nor SLACK_SIGNING_SECRET_PARAMETER): the endpoint verifies Slack's requests with the "
            "Slack app's signing secret",
        )
    from backup_monitor.wiring import shared_reader

    reader = shared_reader()
    return lambda force: reader.read(name, "SLACK_SIGNING_SECRET_PARAMETER", force=force)


def endpoint_store(settings: Settings) -> OnceStore:
    """The state store, with the endpoint's short deadlines on DynamoDB (one retry, 1 s a call)."""
    if settings.state_table:
        import boto3
        from botocore.config import Config

        from backup_monitor.state.dynamodb import DynamoStateStore

        config = Config(
            connect_timeout=ENDPOINT_STORE_TIMEOUT_SECONDS,
            read_timeout=ENDPOINT_STORE_TIMEOUT_SECONDS,
            retries={"max_attempts": 2, "mode": "standard"},
        )
        try:
            client = boto3.client("dynamodb", config=config)
        except Exception as exc:
            raise ConfigError("STATE_TABLE", f"cannot set up a DynamoDB client: {type(exc).__name__}") from None
        return DynamoStateStore(settings.state_table, client)
    from backup_monitor.wiring import build_store

    store = build_store(settings)
    if not hasattr(store, "create_blob"):  # pragma: no cover (both stores have it)
        raise ConfigError("STATE_PATH", "this state store cannot remember Slack requests")
    return store  # type: ignore[return-value]


def build_endpoint(settings: Settings) -> Endpoint:
    """The endpoint of these settings: ConfigError when the signing secret is not configured, or when
    DOWNLOAD_ALLOWED_USERS names a user group and no bot token can be read."""
    from backup_monitor.wiring import resolve_secrets

    secret = signing_secret_source(settings)
    secret(False)  # read once now: a missing or unreadable secret is a configuration error at start
    resolve_secrets(settings)  # the API token (one token) and the bot token: readable, or a ConfigError now
    return Endpoint(settings, endpoint_store(settings), secret, resolve=resolve_secrets)
