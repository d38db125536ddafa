"""Where messages go: a Slack incoming webhook, a Slack bot (threads, edits), or the console."""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import sys
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, TextIO
from urllib.error import HTTPError
from urllib.request import Request, urlopen

from backup_monitor.messages import Message, console_text, edit_blocks, mask_links
from backup_monitor.pacing import Pacer
from backup_monitor.records import ThreadRef

if TYPE_CHECKING:  # slack-sdk is the bot's only: importing any of it costs ~80 ms of a cold start (asyncio...)
    from slack_sdk.errors import SlackApiError
    from slack_sdk.http_retry.handler import RetryHandler

logger = logging.getLogger(__name__)

SLACK_TIMEOUT_SECONDS = 10


class ErrorKind(StrEnum):
    """Why Slack did not take a message, which decides what the check does next."""

    TRANSIENT = "transient"  # Slack or the network failed: retried at the next check
    MESSAGE = "message"  # this message is refused (malformed, too long): resent as plain text, then given up
    DESTINATION = "destination"  # the webhook, token or channel is refused: nothing more is sent this check


# Slack's answers about the message itself (Web API errors; webhook bodies with HTTP 400).
MESSAGE_ERRORS = frozenset(
    {
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "msg_blocks_too_long",
        "invalid_attachments",
        "too_many_attachments",
        "invalid_payload",
        "no_text",
        "missing_text_or_fallback_or_attachments",
        "invalid_arguments",
        "invalid_json",
        "json_not_object",
        "invalid_metadata_format",
        "markdown_text_conflict",
        "user_not_found",
        # chat.update: this message cannot be edited (any more)
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
    }
)
# Slack's answers about where the message goes or who sends it.
DESTINATION_ERRORS = frozenset(
    {
        "invalid_auth",
        "invalid_token",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "not_allowed_token_type",
        "missing_scope",
        "no_permission",
        "access_denied",
        "ekm_access_denied",
        "org_login_required",
        "team_access_not_granted",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "channel_is_archived",
        "no_service",
        "no_service_id",
        "no_active_hooks",
        "no_team",
        "team_disabled",
        "action_prohibited",
        "posting_to_general_channel_denied",
        "restricted_action",
        "restricted_action_read_only_channel",
        "restricted_action_thread_only_channel",
        "restricted_action_non_threadable_channel",
    }
)


def classify(error: str, status: int | None = None) -> ErrorKind:
    """The kind of a Slack error string (and, for webhooks, of its HTTP status)."""
    if error in DESTINATION_ERRORS or status in (401, 403, 404, 410):
        return ErrorKind.DESTINATION
    if error in MESSAGE_ERRORS or status in (400, 413):
        return ErrorKind.MESSAGE
    return ErrorKind.TRANSIENT


class DeliveryError(Exception):
    """A message (or an edit) was not accepted; `kind` says whether to retry, resend as text, or stop.

    `retry_after`: Slack's Retry-After on a 429 (seconds); `server_error`: a 5xx (Slack did not take it);
    `uncertain`: the request may have reached Slack (a reset or a timeout after it was sent): never retried.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind,
        retry_after: float | None = None,
        server_error: bool = False,
        uncertain: bool = False,
        code: str = "",
    ) -> None:
        super().__init__(message)
        self.code = code
        self.kind = kind
        self.retry_after = retry_after
        self.server_error = server_error
        self.uncertain = uncertain

    @property
    def permanent(self) -> bool:
        """Retrying this check would not help: the destination or the credentials are refused."""
        return self.kind is ErrorKind.DESTINATION


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the notifier says about an accepted message: where it landed, and a failed edit if any.

    `moved`: a reply whose thread's channel refused it was posted top-level in the configured channel instead."""

    thread: ThreadRef | None = None
    edit_error: DeliveryError | None = None
    moved: bool = False


class Notifier(Protocol):
    """Sends one message; raises DeliveryError when it is not accepted.

    Optional attributes the check uses when present: `destination` (a fingerprint of where messages go, never
    a secret: a new destination hears the incidents still open), `pace_seconds` (the least time between two
    messages to one channel), `channel_of(message)`, `set_deadline(monotonic deadline)` and `permalink(thread)`."""

    name: str

    def send(self, message: Message) -> Delivery: ...

    def edit(self, target: ThreadRef, edit_text: str) -> None:
        """Mark an incident's first message resolved; raises DeliveryError."""
        ...


def destination_of(notifier: Notifier) -> str:
    """The notifier's `destination` fingerprint, or "" when it has none."""
    return str(getattr(notifier, "destination", ""))


# Slack's chat.postMessage allows about one message a second per channel (bursts tolerated); webhooks the same.
# A little more than a second between two posts, so network jitter never makes two arrive within one.
PACE_SECONDS = 1.05
# The errors a reply meets when its thread's channel (not the configured one) is gone or closed to the bot.
THREAD_CHANNEL_ERRORS = frozenset({"is_archived", "channel_is_archived", "channel_not_found", "not_in_channel"})
MIN_TIMEOUT_SECONDS = 1


def _not_sent(error: BaseException | None) -> bool:
    """Whether a connection failed before any byte of the request could leave (refused, name not resolved)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, ConnectionRefusedError | socket.gaierror):
            return True
        reason = getattr(error, "reason", None)
        error = reason if isinstance(reason, BaseException) else error.__cause__ or error.__context__
    return False


def retry_handlers(max_retries: int = 2) -> list[RetryHandler]:
    """Only retries that cannot repeat a message: 429 and 5xx are the Outbox's (paced, inside the budget)."""
    from slack_sdk.http_retry.handler import RetryHandler
    from slack_sdk.http_retry.request import HttpRequest
    from slack_sdk.http_retry.response import HttpResponse
    from slack_sdk.http_retry.state import RetryState

    class NotSentRetryHandler(RetryHandler):
        """Retries only a connection that surely did not carry the request (refused, DNS): a reset or a timeout
        after the body was sent may mean Slack took the message, and retrying it would post it twice."""

        def _can_retry(
            self,
            *,
            state: RetryState,
            request: HttpRequest,
            response: HttpResponse | None = None,
            error: Exception | None = None,
        ) -> bool:
            return response is None and _not_sent(error)

    return [NotSentRetryHandler(max_retry_count=max_retries)]


WEBHOOK_RETRIES = 2  # a webhook POST that surely did not leave (refused, DNS) is tried again this many times
WEBHOOK_RETRY_PAUSE_SECONDS = 0.5  # doubled at each retry


@dataclass(frozen=True, slots=True)
class _WebhookAnswer:
    status: int
    body: str
    headers: dict[str, str]


def _post_webhook(url: str, payload: dict[str, Any], timeout: float) -> _WebhookAnswer:
    """One JSON POST to an incoming webhook with the standard library (what slack-sdk's WebhookClient does,
    without importing slack-sdk: its package imports the bot's WebClient and asyncio). Only a connection
    that surely did not carry the message is tried again."""
    if not url.lower().startswith(("https://", "http://")):
        raise DeliveryError("the Slack webhook URL is not an http(s) URL", kind=ErrorKind.DESTINATION)
    data = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json;charset=utf-8", "User-Agent": "backup-monitor"}
    for attempt in range(WEBHOOK_RETRIES + 1):
        request = Request(url, data=data, headers=headers, method="POST")  # noqa: S310  (http(s) only, above)
        try:
            with urlopen(request, timeout=timeout) as response:  # noqa: S310
                body = response.read().decode("utf-8", "replace")
                return _WebhookAnswer(response.status, body, dict(response.headers.items()))
        except HTTPError as exc:
            with exc:
                body = exc.read().decode(exc.headers.get_content_charset() or "utf-8", "replace")
            return _WebhookAnswer(exc.code, body, dict(exc.headers.items()))
        except OSError as exc:  # URLError included
            if attempt == WEBHOOK_RETRIES or not _not_sent(exc):
                raise
            time.sleep(WEBHOOK_RETRY_PAUSE_SECONDS * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _network_error(exc: BaseException, what: str) -> DeliveryError:
    if _not_sent(exc):
        return DeliveryError(f"{what} unreachable ({type(exc).__name__})", kind=ErrorKind.TRANSIENT)
    return DeliveryError(
        f"{what}: no answer after the message was sent ({type(exc).__name__}); not retried, it may have arrived",
        kind=ErrorKind.TRANSIENT,
        uncertain=True,
    )


def _retry_after(headers: Any) -> float | None:
    try:
        values = headers.get("Retry-After") or headers.get("retry-after")
    except AttributeError:
        return None
    if isinstance(values, list):
        values = values[0] if values else None
    try:
        return max(0.0, float(values)) if values is not None else None
    except ValueError:
        return None


class _Timed:
    """A per-request timeout that never runs past the check's deadline (time.monotonic())."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._deadline: float | None = None
        self.pacer = Pacer()  # kept with the notifier: a warm process paces across its checks

    def set_deadline(self, deadline: float | None) -> None:
        self._deadline = deadline

    def request_timeout(self) -> int:
        timeout = self._timeout
        if self._deadline is not None:
            timeout = min(timeout, self._deadline - time.monotonic())
        return max(MIN_TIMEOUT_SECONDS, int(timeout))


class ConsoleNotifier:
    """Readable text on standard output: the default, the demo and `--dry-run`.

    `json_lines`: each message's exact Slack payload, one JSON object per line (`--json`). Download tokens are
    hidden unless `show_links` (`--show-links`): terminals and CI logs keep what they print.
    """

    name = "console"
    destination = "console"
    pace_seconds = 0.0

    def __init__(self, stream: TextIO | None = None, *, json_lines: bool = False, show_links: bool = False) -> None:
        self._stream = stream
        self._json = json_lines
        self._show_links = show_links
        self._lock = threading.Lock()

    def _print(self, text: str) -> None:
        with self._lock:
            print(text, file=self._stream or sys.stdout, flush=True)

    def send(self, message: Message) -> Delivery:
        if self._json:
            line = json.dumps(message.payload(), ensure_ascii=False, separators=(",", ":"))
            self._print(line if self._show_links else mask_links(line))
            return Delivery()
        prefix = "  (in thread) " if message.thread else ""
        self._print(f"{prefix}{console_text(message, show_links=self._show_links)}\n")
        return Delivery()

    def edit(self, target: ThreadRef, edit_text: str) -> None:
        if not self._json:
            self._print(f"  (first message marked resolved) {target.ts}\n")


class WebhookNotifier(_Timed):
    """A Slack incoming webhook: one channel, no threads, no edits."""

    name = "slack-webhook"
    pace_seconds = PACE_SECONDS

    def __init__(self, url: str, timeout: int = SLACK_TIMEOUT_SECONDS) -> None:
        super().__init__(timeout)
        self._url = url
        # Which webhook, without the secret: a truncated SHA-256 of the URL (stored with each incident).
        self.destination = "webhook:" + hashlib.sha256(url.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return "WebhookNotifier(url=<secret>)"

    def channel_of(self, message: Message) -> str:
        return "webhook"

    def send(self, message: Message) -> Delivery:
        payload: dict[str, Any] = {"text": message.text, "unfurl_links": False}
        if message.blocks:
            payload["blocks"] = message.blocks
        try:
            response = _post_webhook(self._url, payload, self.request_timeout())
        except OSError as exc:
            raise _network_error(exc, "Slack webhook") from None
        if response.status == 200:
            return Delivery()
        body = (response.body or "").strip()[:80]
        status = response.status
        if status == 429:
            raise DeliveryError(
                "Slack webhook answered 429 (rate limited)",
                kind=ErrorKind.TRANSIENT,
                retry_after=_retry_after(response.headers) or PACE_SECONDS,
            )
        if status >= 500:
            raise DeliveryError(f"Slack webhook answered {status}", kind=ErrorKind.TRANSIENT, server_error=True)
        raise DeliveryError(f"Slack webhook answered {status} {body}", kind=classify(body, status))

    def edit(self, target: ThreadRef, edit_text: str) -> None:
        raise DeliveryError("a webhook cannot edit messages", kind=ErrorKind.MESSAGE)


class BotNotifier(_Timed):
    """A Slack bot token: incidents get a thread; reminders and resolution reply there; resolution edits."""

    name = "slack-bot"
    pace_seconds = PACE_SECONDS

    def __init__(self, token: str, channel: str, base_url: str | None = None, timeout: int = SLACK_TIMEOUT_SECONDS):
        super().__init__(timeout)
        from slack_sdk.web import WebClient  # the bot's only (see TYPE_CHECKING above)

        self._client = WebClient(
            token=token, base_url=base_url or WebClient.BASE_URL, timeout=timeout, retry_handlers=retry_handlers()
        )
        self._channel = channel
        self.destination = f"bot:{channel}"
        self._workspace_url: str | None = None
        self._workspace_asked = False

    def __repr__(self) -> str:
        return f"BotNotifier(channel={self._channel!r})"

    @property
    def channel(self) -> str:
        return self._channel

    def channel_of(self, message: Message) -> str:
        return message.thread.channel if message.thread else self._channel

    def permalink(self, thread: ThreadRef) -> str | None:
        """A link that opens the exact message: the workspace URL (auth.test, asked once) + channel + ts."""
        if not self._workspace_asked:
            self._workspace_asked = True
            from slack_sdk.errors import SlackClientError

            try:
                self._client.timeout = self.request_timeout()
                url = self._client.auth_test().get("url")
            except (SlackClientError, OSError):
                url = None
            if isinstance(url, str) and url.startswith("https://"):
                self._workspace_url = url.rstrip("/") + "/"
        if self._workspace_url is None:
            return None
        return f"{self._workspace_url}archives/{thread.channel}/p{thread.ts.replace('.', '')}"

    def send(self, message: Message) -> Delivery:
        thread = message.thread
        try:
            response = self._post(message, thread)
        except DeliveryError as exc:
            moved = thread is not None and thread.channel != self._channel and exc.code in THREAD_CHANNEL_ERRORS
            if not moved:
                raise
            # The incident's thread is in a channel that is archived or closed to the bot: the incident goes on
            # top-level in the configured channel (only that channel's refusal stops sending).
            logger.warning("an incident's thread refuses replies, posting in the channel", extra={"error": str(exc)})
            response = self._post(message, None)
            return Delivery(self._landed(response), moved=True)
        edit_error = None
        if message.edit is not None:
            try:
                self.edit(message.edit, message.edit_text or message.text)
            except DeliveryError as exc:
                # The resolution reply was accepted: only the edit is left to do (the monitor retries it).
                edit_error = exc
        if thread is not None:
            return Delivery(thread, edit_error)
        return Delivery(self._landed(response), edit_error)

    def _landed(self, response: Any) -> ThreadRef:
        return ThreadRef(str(response.get("channel") or self._channel), str(response.get("ts")))

    def _post(self, message: Message, thread: ThreadRef | None) -> Any:
        from slack_sdk.errors import SlackApiError, SlackClientError

        self._client.timeout = self.request_timeout()
        try:
            return self._client.chat_postMessage(
                channel=thread.channel if thread else self._channel,
                text=message.text,
                blocks=message.blocks or None,
                thread_ts=thread.ts if thread else None,
                reply_broadcast=True if thread is not None and message.broadcast else None,
                unfurl_links=False,
            )
        except SlackApiError as exc:
            raise _api_error(exc) from None
        except (SlackClientError, OSError) as exc:
            raise _network_error(exc, "Slack") from None

    def edit(self, target: ThreadRef, edit_text: str) -> None:
        from slack_sdk.errors import SlackApiError, SlackClientError

        self._client.timeout = self.request_timeout()
        try:
            self._client.chat_update(
                channel=target.channel, ts=target.ts, text=edit_text, blocks=edit_blocks(edit_text)
            )
        except SlackApiError as exc:
            raise _api_error(exc) from None
        except (SlackClientError, OSError) as exc:
            raise _network_error(exc, "Slack") from None


def _api_error(exc: SlackApiError) -> DeliveryError:
    error = str(exc.response.get("error", "unknown_error"))[:80]
    status = exc.response.status_code
    if status == 429:
        retry_after = _retry_after(exc.response.headers) or PACE_SECONDS
        return DeliveryError(f"Slack answered {error}", kind=ErrorKind.TRANSIENT, retry_after=retry_after, code=error)
    if status >= 500:
        return DeliveryError(f"Slack answered {error}", kind=ErrorKind.TRANSIENT, server_error=True, code=error)
    return DeliveryError(f"Slack answered {error}", kind=classify(error), code=error)
