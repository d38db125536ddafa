"""Sending one check's messages: a refused message is resent as plain text, then given up; a refused destination
stops sending for the rest of the check; a failed edit of a resolved incident is retried at later checks."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from backup_monitor.messages import Message, plain_fallback
from backup_monitor.notifiers import Delivery, DeliveryError, ErrorKind, Notifier
from backup_monitor.records import PendingEdit, ThreadRef

logger = logging.getLogger(__name__)

EDIT_ATTEMPTS = 4  # an edit that keeps failing is tried at this many checks, then given up
GIVEN_UP = Delivery()  # refused even as plain text: recorded as handled, never retried


@dataclass(slots=True)
class Outbox:
    """One check's deliveries through one notifier, with what happened to them."""

    notifier: Notifier
    sent: int = 0
    undelivered: int = 0
    given_up: int = 0
    stopped: str | None = None

    def send(self, message: Message) -> Delivery | None:
        """The delivery, GIVEN_UP, or None (not delivered: retried next check)."""
        if self.stopped is not None:
            self.undelivered += 1
            return None
        try:
            return self._sent(self.notifier.send(message))
        except DeliveryError as exc:
            if exc.kind is not ErrorKind.MESSAGE:
                self._failed(exc)
                return None
            logger.warning("slack refused a message, sending it as plain text", extra={"error": str(exc)})
        try:
            return self._sent(self.notifier.send(plain_fallback(message)))
        except DeliveryError as exc:
            if exc.kind is not ErrorKind.MESSAGE:
                self._failed(exc)
                return None
            self.given_up += 1
            logger.error("message given up: slack refused it even as plain text", extra={"error": str(exc)})
            return GIVEN_UP

    def edit(self, pending: PendingEdit) -> PendingEdit | None:
        """Retry an edit left over from an earlier check: what is still to retry, or None (done or given up)."""
        if self.stopped is not None:
            return pending
        try:
            self.notifier.edit(ThreadRef(pending.channel, pending.ts), pending.text)
        except DeliveryError as exc:
            return self.edit_failed(pending, exc)
        return None

    def edit_failed(self, pending: PendingEdit, exc: DeliveryError) -> PendingEdit | None:
        """After a failed edit (`pending.attempts` earlier failures): the edit to retry next check, or None."""
        if exc.kind is ErrorKind.DESTINATION:
            self.stopped = str(exc)
        if exc.kind is ErrorKind.MESSAGE or pending.attempts + 1 >= EDIT_ATTEMPTS:
            logger.warning("edit of a resolved incident's first message given up", extra={"error": str(exc)})
            return None
        logger.warning("could not mark an incident's first message resolved", extra={"error": str(exc)})
        return replace(pending, attempts=pending.attempts + 1)

    def _sent(self, delivery: Delivery) -> Delivery:
        self.sent += 1
        return delivery

    def _failed(self, exc: DeliveryError) -> None:
        self.undelivered += 1
        logger.error("message not delivered", extra={"error": str(exc), "kind": exc.kind.value})
        if exc.kind is ErrorKind.DESTINATION:
            self.stopped = str(exc)
