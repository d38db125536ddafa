"""Sending one check's messages, paced and inside the check's time budget.

- Paced: at most one message a second per channel (Slack's chat.postMessage limit; `pace_seconds` of the
  notifier) and one edit every EDIT_PACE_SECONDS (chat.update's own limit), so a 429 is rare.
- A 429 is waited out (its Retry-After) only when the wait fits in the time left; a 5xx is retried once after a
  short pause, inside the budget too. When the budget cannot cover a wait, sending stops: what was not sent is
  found again by the next check, in order, nothing lost. Slack never holds a check past its deadline.
- A refused message is resent as plain text, then given up; a refused destination (the configured channel, the
  webhook or the credential) stops sending for the rest of the check; a failed edit never stops anything.
- A message whose answer was lost after it was sent (reset, timeout) is not retried (it may have arrived): it
  counts as undelivered and the next check sends it again. That is the one window in which Slack may show a
  message twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from backup_monitor.messages import Message, plain_fallback
from backup_monitor.notifiers import Delivery, DeliveryError, ErrorKind, Notifier
from backup_monitor.pacing import Pacer
from backup_monitor.records import PendingEdit, ThreadRef

logger = logging.getLogger(__name__)

EDIT_ATTEMPTS = 4  # an edit that keeps failing is tried at this many checks, then given up
GIVEN_UP = Delivery()  # refused even as plain text: recorded as handled, never retried
EDIT_PACE_SECONDS = 1.2  # chat.update is Tier 3 (about 50 a minute)
SERVER_ERROR_PAUSE_SECONDS = 1.0
MAX_WAITS_PER_MESSAGE = 2  # 429/5xx waits for one message; then it is left for the next check
TRANSIENT_FAILURES_TO_STOP = 2  # Slack failing this many messages in a row: the rest goes at the next check


@dataclass(slots=True)
class Outbox:
    """One check's deliveries through one notifier, with what happened to them.

    `deadline` (time.monotonic()) bounds every wait and every request; None: no limit (a command run)."""

    notifier: Notifier
    deadline: float | None = None
    sent: int = 0
    undelivered: int = 0
    given_up: int = 0
    rate_limited: int = 0
    failing_in_a_row: int = 0
    stopped: str | None = None
    out_of_time: bool = False
    pacer: Pacer = field(default_factory=Pacer)
    sleep: Callable[[float], None] = time.sleep
    stop: threading.Event | None = None  # set (Ctrl-C, SIGTERM): no wait goes on, nothing more is sent

    def __post_init__(self) -> None:
        shared = getattr(self.notifier, "pacer", None)
        if isinstance(shared, Pacer):  # the notifier's own: pacing spans the checks of one process
            self.pacer = shared
        set_deadline = getattr(self.notifier, "set_deadline", None)
        if callable(set_deadline):
            set_deadline(self.deadline)

    @property
    def interval(self) -> float:
        return float(getattr(self.notifier, "pace_seconds", 0.0) or 0.0)

    def channel_of(self, message: Message) -> str:
        channel_of = getattr(self.notifier, "channel_of", None)
        return str(channel_of(message)) if callable(channel_of) else self.notifier.name

    def permalink(self, thread: ThreadRef) -> str | None:
        permalink = getattr(self.notifier, "permalink", None)
        if not callable(permalink):
            return None
        link = permalink(thread)
        return link if isinstance(link, str) else None

    def left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def _wait(self, seconds: float, why: str) -> bool:
        """Wait `seconds` if that ends before the deadline; otherwise stop sending (the budget is spent).

        A send started before the deadline may end after it, by at most its request timeout (bounded by the
        notifier): the Lambda keeps a margin beyond the budget for that (budget.LAMBDA_SAFETY_MARGIN_SECONDS)."""
        if self.stop is not None and self.stop.is_set():
            self.stopped = self.stopped or "interrupted"
            return False
        left = self.left()
        if left is not None and (left <= 0 or seconds >= left):
            if not self.out_of_time:
                logger.warning(
                    "no time left to wait for slack, the rest goes at the next check",
                    extra={"wait_s": round(seconds, 1), "left_s": round(left, 1), "why": why},
                )
            self.out_of_time = True
            return False
        if seconds > 0 and self.stop is not None:
            if self.stop.wait(seconds):  # interrupted while waiting
                self.stopped = self.stopped or "interrupted"
                return False
        elif seconds > 0:
            self.sleep(seconds)
        return True

    def send(self, message: Message) -> Delivery | None:
        """The delivery, GIVEN_UP, or None (not delivered: the next check sends it)."""
        if self.stopped is not None or self.out_of_time:
            self.undelivered += 1
            return None
        try:
            return self._send_paced(message)
        except DeliveryError as exc:
            if exc.kind is not ErrorKind.MESSAGE:
                self._failed(exc)
                return None
            logger.warning("slack refused a message, sending it as plain text", extra={"error": str(exc)})
        except Exception as exc:  # a bug in a notifier costs this message (sent again next check), not the check
            # The type only: a traceback from inside a Slack client could quote the webhook URL or the token.
            logger.error("unexpected error sending a message", extra={"error": type(exc).__name__})
            self._failed(DeliveryError(f"internal error ({type(exc).__name__})", kind=ErrorKind.TRANSIENT))
            return None
        try:
            return self._send_paced(plain_fallback(message))
        except DeliveryError as exc:
            if exc.kind is not ErrorKind.MESSAGE:
                self._failed(exc)
                return None
            self.given_up += 1
            logger.error("message given up: slack refused it even as plain text", extra={"error": str(exc)})
            return GIVEN_UP

    def _send_paced(self, message: Message) -> Delivery:
        """One message, paced; 429 and 5xx waited out inside the budget; raises DeliveryError otherwise."""
        channel = self.channel_of(message)
        waits = 0
        while True:
            if not self._wait(self.pacer.wait_for(channel), "pace"):
                raise _OutOfTime()
            self.pacer.sent(channel, self.interval)
            try:
                delivery = self.notifier.send(message)
            except DeliveryError as exc:
                if exc.retry_after is not None:
                    self.rate_limited += 1
                    self.pacer.hold(channel, exc.retry_after)
                    logger.warning("slack rate limited us", extra={"retry_after_s": exc.retry_after})
                elif exc.server_error:
                    self.pacer.hold(channel, SERVER_ERROR_PAUSE_SECONDS * (waits + 1))
                else:
                    raise
                waits += 1
                if waits > MAX_WAITS_PER_MESSAGE:
                    raise
                continue
            self.sent += 1
            self.failing_in_a_row = 0
            return delivery

    def edit(self, pending: PendingEdit) -> PendingEdit | None:
        """Retry an edit left over from an earlier check: what is still to retry, or None (done or given up)."""
        if self.stopped is not None or self.out_of_time:
            return pending
        if not self._wait(self.pacer.wait_for("chat.update"), "edit pace"):
            return pending
        self.pacer.sent("chat.update", EDIT_PACE_SECONDS if self.interval else 0.0)
        try:
            self.notifier.edit(ThreadRef(pending.channel, pending.ts), pending.text)
        except DeliveryError as exc:
            return self.edit_failed(pending, exc)
        return None

    def edit_failed(self, pending: PendingEdit, exc: DeliveryError) -> PendingEdit | None:
        """After a failed edit (`pending.attempts` earlier failures): the edit to retry next check, or None.

        An edit never stops sending: a refused edit (an archived channel, a message gone) is only that edit's."""
        if exc.kind is not ErrorKind.TRANSIENT or pending.attempts + 1 >= EDIT_ATTEMPTS:
            logger.warning("edit of a resolved incident's first message given up", extra={"error": str(exc)})
            return None
        logger.warning("could not mark an incident's first message resolved", extra={"error": str(exc)})
        return replace(pending, attempts=pending.attempts + 1)

    def _failed(self, exc: DeliveryError) -> None:
        self.undelivered += 1
        if isinstance(exc, _OutOfTime):
            return
        logger.error("message not delivered", extra={"error": str(exc), "kind": exc.kind.value})
        if exc.kind is ErrorKind.DESTINATION:
            self.stopped = str(exc)
        elif exc.retry_after is not None:  # still rate limited after waiting: posting on would risk the app
            self.stopped = f"{exc} (rate limited; the rest goes at the next check)"
        else:
            self.failing_in_a_row += 1
            if self.failing_in_a_row >= TRANSIENT_FAILURES_TO_STOP:  # Slack is down: no point hammering it
                self.stopped = f"{exc} ({self.failing_in_a_row} messages in a row; the rest goes at the next check)"


class _OutOfTime(DeliveryError):
    """The budget cannot cover the wait before this message: it is left for the next check."""

    def __init__(self) -> None:
        super().__init__("out of time", kind=ErrorKind.TRANSIENT)
