"""Where messages go: a Slack incoming webhook, a Slack bot (threads, edits), or the console."""

from __future__ import annotations

import json
import logging
import sys
import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TextIO

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.webhook import WebhookClient

from backup_monitor.messages import Message, console_text, edit_blocks, mask_links
from backup_monitor.records import ThreadRef

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
    """A message (or an edit) was not accepted; `kind` says whether to retry, resend as text, or stop."""

    def __init__(self, message: str, *, kind: ErrorKind) -> None:
        super().__init__(message)
        self.kind = kind

    @property
    def permanent(self) -> bool:
        """Retrying this check would not help: the destination or the credentials are refused."""
        return self.kind is ErrorKind.DESTINATION


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the notifier says about an accepted message: where it landed, and a failed edit if any."""

    thread: ThreadRef | None = None
    edit_error: DeliveryError | None = None


class Notifier(Protocol):
    """Sends one message; raises DeliveryError when it is not accepted."""

    name: str

    def send(self, message: Message) -> Delivery: ...

    def edit(self, target: ThreadRef, edit_text: str) -> None:
        """Mark an incident's first message resolved; raises DeliveryError."""
        ...


def retry_handlers(max_retries: int = 2) -> list[RetryHandler]:
    """slack-sdk's own handlers: connection errors, rate limits (Retry-After), server errors."""
    return [
        ConnectionErrorRetryHandler(max_retry_count=max_retries),
        RateLimitErrorRetryHandler(max_retry_count=max_retries),
        ServerErrorRetryHandler(max_retry_count=max_retries),
    ]


class ConsoleNotifier:
    """Readable text on standard output: the default, the demo and `--dry-run`.

    `json_lines`: each message's exact Slack payload, one JSON object per line (`--json`). Download tokens are
    hidden unless `show_links` (`--show-links`): terminals and CI logs keep what they print.
    """

    name = "console"

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


class WebhookNotifier:
    """A Slack incoming webhook: one channel, no threads, no edits."""

    name = "slack-webhook"

    def __init__(self, url: str, timeout: int = SLACK_TIMEOUT_SECONDS) -> None:
        self._client = WebhookClient(url, timeout=timeout, retry_handlers=retry_handlers())

    def __repr__(self) -> str:
        return "WebhookNotifier(url=<secret>)"

    def send(self, message: Message) -> Delivery:
        try:
            response = self._client.send(text=message.text, blocks=message.blocks or None, unfurl_links=False)
        except (SlackClientError, OSError) as exc:
            raise DeliveryError(f"Slack webhook unreachable ({type(exc).__name__})", kind=ErrorKind.TRANSIENT) from None
        if response.status_code == 200:
            return Delivery()
        body = (response.body or "").strip()[:80]
        kind = classify(body, response.status_code) if response.status_code < 500 else ErrorKind.TRANSIENT
        if response.status_code == 429:
            kind = ErrorKind.TRANSIENT
        raise DeliveryError(f"Slack webhook answered {response.status_code} {body}", kind=kind)

    def edit(self, target: ThreadRef, edit_text: str) -> None:
        raise DeliveryError("a webhook cannot edit messages", kind=ErrorKind.MESSAGE)


class BotNotifier:
    """A Slack bot token: incidents get a thread; reminders and resolution reply there; resolution edits."""

    name = "slack-bot"

    def __init__(self, token: str, channel: str, base_url: str | None = None, timeout: int = SLACK_TIMEOUT_SECONDS):
        self._client = WebClient(
            token=token, base_url=base_url or WebClient.BASE_URL, timeout=timeout, retry_handlers=retry_handlers()
        )
        self._channel = channel

    def __repr__(self) -> str:
        return f"BotNotifier(channel={self._channel!r})"

    def send(self, message: Message) -> Delivery:
        thread = message.thread
        channel = thread.channel if thread else self._channel
        try:
            response = self._client.chat_postMessage(
                channel=channel,
                text=message.text,
                blocks=message.blocks or None,
                thread_ts=thread.ts if thread else None,
                unfurl_links=False,
            )
        except SlackApiError as exc:
            raise _api_error(exc) from None
        except (SlackClientError, OSError) as exc:
            raise DeliveryError(f"Slack unreachable ({type(exc).__name__})", kind=ErrorKind.TRANSIENT) from None
        edit_error = None
        if message.edit is not None:
            try:
                self.edit(message.edit, message.edit_text or message.text)
            except DeliveryError as exc:
                # The resolution reply was accepted: only the edit is left to do (the monitor retries it).
                edit_error = exc
        if thread is not None:
            return Delivery(thread, edit_error)
        return Delivery(ThreadRef(str(response.get("channel") or channel), str(response.get("ts"))), edit_error)

    def edit(self, target: ThreadRef, edit_text: str) -> None:
        try:
            self._client.chat_update(
                channel=target.channel, ts=target.ts, text=edit_text, blocks=edit_blocks(edit_text)
            )
        except SlackApiError as exc:
            raise _api_error(exc) from None
        except (SlackClientError, OSError) as exc:
            raise DeliveryError(f"Slack unreachable ({type(exc).__name__})", kind=ErrorKind.TRANSIENT) from None


def _api_error(exc: SlackApiError) -> DeliveryError:
    error = str(exc.response.get("error", "unknown_error"))[:80]
    status = exc.response.status_code
    kind = ErrorKind.TRANSIENT if status == 429 or status >= 500 else classify(error)
    return DeliveryError(f"Slack answered {error}", kind=kind)
