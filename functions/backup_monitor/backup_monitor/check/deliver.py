"""Stage `deliver`: send a batch's messages, paced and inside the budget, and after EACH accepted message write
what it announced into every record it concerns (the notification log), so a cut repeats at most the message
in flight. A database's claim is released with its last write of the check.

Alertmanager's notify pipeline is the model: `plan` is the group stage, `Outbox` the retry/wait stage, and the
write after each send is its set-notifies stage; the records, read by the next check's rules, are the dedup.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field, replace

from backup_monitor.cadence import with_read_at
from backup_monitor.check.group import Options, Outgoing, plan
from backup_monitor.check.model import Run, Summary, Work
from backup_monitor.delivery import GIVEN_UP, Outbox
from backup_monitor.notifiers import BotNotifier, Delivery
from backup_monitor.records import PendingEdit, Record
from backup_monitor.rules import Notice, apply
from backup_monitor.state.base import StateError

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Deliverer:
    """The deliveries of one check (every batch goes through the same outboxes, pacing and mentions)."""

    run: Run
    summary: Summary
    deadline: float | None
    stop: threading.Event | None = None
    outbox: Outbox = field(init=False)
    success_outbox: Outbox = field(init=False)
    options: Options = field(init=False)
    _current: dict[int, Record] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clients, settings = self.run.clients, self.run.settings
        self.outbox = Outbox(clients.notifier, self.deadline, stop=self.stop)
        success = clients.success_notifier
        self.success_outbox = Outbox(success, self.deadline, stop=self.stop) if success is not None else self.outbox
        self.options = Options(
            now=self.run.now,
            runbook_url=settings.runbook_url or "",
            mention=settings.slack_mention,
            success_notices=settings.policy.success_notices,
            threaded_successes=isinstance(success or clients.notifier, BotNotifier),
            permalink=self.outbox.permalink,
            interactive=settings.slack_interactive,
            download_buttons=settings.slack_interactive and settings.download_links,
        )

    # -- one batch ----------------------------------------------------------------------------------------------

    def deliver(self, works: list[Work]) -> None:
        """Send the batch's messages in order; each accepted one is written before the next is sent."""
        works = [w for w in works if w.evaluation is not None and not w.done]
        if not works:
            return
        for work in works:
            self._start(work)
        outgoing = plan(works, self.options)
        left = Counter(id(w) for out in outgoing for w, _ in out.items)
        head: Delivery | None = None
        for out in outgoing:
            delivery = self._send(out, head)
            if out.head:
                head = delivery
            touched: list[Work] = []
            for work, notice in out.items:
                if work not in touched:
                    touched.append(work)
                if delivery is None:
                    work.undelivered = True  # found again and read first by the next check
                if delivery is not None and (work.claimed is not None or self.run.dry_run):
                    self._record(work, notice, delivery, out)
            for work in touched:
                left[id(work)] -= 1
                if left[id(work)] == 0:
                    self._finish(work)
        for work in works:  # nothing (more) to send for them: commit what changed and release
            self._finish(work)

    def _start(self, work: Work) -> None:
        """Retry the edits left from earlier checks, and begin from the record as the rules left it."""
        assert work.evaluation is not None
        base = work.evaluation.base
        pending = base.pending_edits
        edits = list(pending) if self.run.dry_run else [e for e in (self.outbox.edit(p) for p in pending) if e]
        version = work.claimed.version if work.claimed is not None else base.version
        self._current[id(work)] = replace(base, pending_edits=tuple(edits), version=version)

    def _send(self, out: Outgoing, head: Delivery | None) -> Delivery | None:
        if out.message is None:
            return GIVEN_UP  # nothing to send (SUCCESS_NOTICES=off): recorded as delivered
        outbox = self.success_outbox if out.success else self.outbox
        message = out.message
        if out.after_head:
            if head is None:
                outbox.undelivered += 1  # its count message was not sent: the next check sends both
                return None
            if head.thread is not None:
                message = replace(message, thread=head.thread)
        return outbox.send(message)

    def _record(self, work: Work, notice: Notice, delivery: Delivery, out: Outgoing) -> None:
        """Fold one delivered notice into the record, then write it (the claim is kept until the last one)."""
        record = self._current[id(work)]
        thread = None if delivery is GIVEN_UP else delivery.thread
        if out.success or out.head:
            thread = None
        destination = "" if out.success else self.run.destination
        shared = out.shared and not delivery.moved
        record = apply(record, notice, self.run.now, thread, shared=shared, destination=destination)
        message = out.message
        if delivery.edit_error is not None and message is not None and message.edit is not None:
            first = PendingEdit(message.edit.channel, message.edit.ts, message.edit_text, attempts=0)
            retry = self.outbox.edit_failed(first, delivery.edit_error)
            if retry is not None:
                record = replace(record, pending_edits=(*record.pending_edits, retry))
        self._current[id(work)] = record
        if self.run.dry_run or work.claimed is None:
            return
        self._write(work, record, release=False)

    def _write(self, work: Work, record: Record, *, release: bool) -> None:
        run = self.run
        try:
            written = run.clients.store.commit(
                record, run.owner, run.claims.stamp(), release=release, ttl=run.claims.ttl()
            )
        except StateError as exc:
            logger.error("could not save what was delivered", extra={"target": work.target.key, "error": str(exc)})
            self.summary.undelivered += 1
            work.claimed = None  # the claim is lost (taken over, or the store fails): stop writing this record
            work.done = True
            return
        self._current[id(work)] = written
        work.claimed = written

    def _finish(self, work: Work) -> None:
        """The database's last write of the check: what changed, with the claim released."""
        if work.done:
            return
        work.done = True
        if self.run.dry_run or work.claimed is None:
            return
        record = self._current.get(id(work))
        if record is None:
            return
        if not (work.undelivered or work.failed or work.gone or work.retiring or work.outage_region or work.infos):
            record = with_read_at(record, self.run.now)  # read in full, everything said: due again by cadence.py
        self._write(work, record, release=True)

    def interrupt(self) -> None:
        """Send nothing more (what is not sent is found again by the next check); writes still go on."""
        for box in (self.outbox, self.success_outbox):
            box.stopped = box.stopped or "interrupted"

    # -- after the last batch -----------------------------------------------------------------------------------

    def close(self) -> None:
        """Add the outboxes' counts to the summary."""
        boxes = [self.outbox] if self.success_outbox is self.outbox else [self.outbox, self.success_outbox]
        for box in boxes:
            self.summary.sent += box.sent
            self.summary.undelivered += box.undelivered
            self.summary.given_up += box.given_up
            self.summary.out_of_time = self.summary.out_of_time or box.out_of_time
            if box.stopped and box.stopped != "interrupted" and not self.summary.delivery_error:
                self.summary.delivery_error = f"Slack delivery stopped: {box.stopped}"
        self.summary.rate_limited = sum(b.rate_limited for b in boxes)
