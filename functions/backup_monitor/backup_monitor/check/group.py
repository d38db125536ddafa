"""Stage `group` (pure): one batch of evaluated databases -> the ordered messages to send.

Alertmanager's `group_by`: when one batch has GROUP_AT or more notices of the same kind and phase, they are one
message (parts when too long), one mention at most, every database named. Incidents stay per database: each
closes on its own evidence. Fewer are sent one by one. Critical openings go first, successes last.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from backup_monitor.check.model import Work
from backup_monitor.interactions_ui import download_actions, download_button, incident_actions
from backup_monitor.messages import (
    ALERT_PHASES,
    Message,
    render,
    render_digest,
    render_group,
    render_outage,
    render_success,
)
from backup_monitor.records import ThreadRef
from backup_monitor.rules import SEVERITY_ORDER, Kind, Notice, Phase

GROUP_AT = 5  # this many notices of one kind and phase in a batch are announced together
# SLACK_INTERACTIVE: a grouped message (a storm) carries no buttons. One Acknowledge and one Silence per database
# would be up to 2 x 300 buttons (Slack: 25 per actions block, 50 blocks per message), and an edit after one
# click could not say which database it was about without rewriting everyone's line. Each database's incident
# is acknowledged or silenced from the command line (`backup-monitor silence 'osc-fr1/app-*'`) or from its
# own message once the storm is over (its reminders are per database when fewer than GROUP_AT remind together).
PHASE_ORDER = {Phase.OPEN: 0, Phase.UPDATE: 1, Phase.NOTICE: 2, Phase.REMIND: 3, Phase.RESOLVE: 4}


@dataclass(slots=True)
class Outgoing:
    """One message to send and the notices it announces (what is recorded once Slack accepted it).

    `message` None: nothing to send (SUCCESS_NOTICES=off), recorded as delivered. `shared`: a grouped opening,
    whose thread the incidents share. `success`: goes to the success destination. `after_head`: a list part of a
    compact digest, sent in the thread of the Outgoing just before it when that one landed in a thread."""

    message: Message | None
    items: list[tuple[Work, Notice]] = field(default_factory=list)
    shared: bool = False
    success: bool = False
    after_head: bool = False
    head: bool = False


@dataclass(slots=True)
class Options:
    """What the planner needs from the check, the settings and the notifiers.

    `now`: the check's clock, which the messages' facts are dated from ("3 days ago"); `runbook_url`:
    RUNBOOK_URL, linked from every alert's footer (empty: no link)."""

    now: datetime
    runbook_url: str = ""
    mention: str = ""
    success_notices: str = "digest"
    threaded_successes: bool = False
    permalink: Callable[[ThreadRef], str | None] | None = None
    mentioned: set[Kind] = field(default_factory=set)  # kinds already mentioned in this check (one page each)
    # SLACK_INTERACTIVE: incident messages carry Acknowledge and Silence 24 h; `download_buttons` (and
    # DOWNLOAD_LINKS): successes a "Get download link" button instead of a link.
    interactive: bool = False
    download_buttons: bool = False


def _order(notice: Notice) -> tuple[int, int]:
    return SEVERITY_ORDER[notice.severity], PHASE_ORDER[notice.phase]


def _by_name(item: tuple[Work, Notice]) -> tuple[str, str, str]:
    """Databases in a grouped message read in order: region, app, resource."""
    info = item[0].info_for(item[1].incident_key)
    return info.region, info.app, info.resource_id


def incident_buttons(work: Work, notice: Notice) -> dict[str, Any] | None:
    """The Acknowledge / Silence 24 h block of an incident's opening, update or reminder (None: no incident,
    or a key too long for a button's value). Silence is a database's: a record about a region (an API outage)
    or about several databases (the unreadable records) gets Acknowledge only."""
    if notice.phase not in ALERT_PHASES or not notice.incident_key:
        return None
    one_database = work.outage_region is None and not work.infos
    try:
        return incident_actions(work.key, notice.incident_key, silence=one_database)
    except ValueError:
        return None


def _download(work: Work, notice: Notice) -> dict[str, Any] | None:
    if notice.backup is None:
        return None
    try:
        return download_button(work.key, notice.backup.id)
    except ValueError:
        return None


def _render_one(work: Work, notice: Notice, mention: str, options: Options) -> Message:
    now, runbook = options.now, options.runbook_url
    actions = incident_buttons(work, notice) if options.interactive else None
    if work.outage_region is not None:
        message = render_outage(notice, work.outage_region, mention=mention, now=now, runbook=runbook)
        if actions is not None:
            message = replace(message, blocks=[*message.blocks, actions])
        return message
    info = work.info_for(notice.incident_key)
    return render(notice, info, mention=mention, now=now, runbook=runbook, actions=actions)


def plan(works: Sequence[Work], options: Options) -> list[Outgoing]:
    """The messages of one batch, in sending order. Updates `options.mentioned`."""
    groups: dict[tuple[Kind, Phase], list[tuple[Work, Notice]]] = {}
    successes: list[tuple[Work, Notice]] = []
    for work in works:
        if work.evaluation is None:
            continue
        for notice in work.evaluation.notices:
            if notice.kind is Kind.SUCCEEDED:
                successes.append((work, notice))
            else:
                groups.setdefault((notice.kind, notice.phase), []).append((work, notice))
    out: list[Outgoing] = []
    for (kind, _phase), unsorted in sorted(groups.items(), key=lambda kv: _order(kv[1][0][1])):
        items = sorted(unsorted, key=_by_name)
        mention = options.mention if kind not in options.mentioned else ""
        grouped = len(items) >= GROUP_AT and all(w.outage_region is None for w, _ in items)
        if grouped:
            parts = render_group(
                [(n, w.info_for(n.incident_key)) for w, n in items],
                mention=mention,
                permalink=options.permalink,
                now=options.now,
                runbook=options.runbook_url,
            )
            if mention and any(n.mention for _, n in items):
                options.mentioned.add(kind)
            for part in parts:
                out.append(
                    Outgoing(part.message, [items[i] for i in part.items], shared=items[0][1].phase is Phase.OPEN)
                )
            continue
        for work, notice in items:
            say = options.mention if kind not in options.mentioned else ""
            out.append(Outgoing(_render_one(work, notice, say, options), [(work, notice)]))
            if say and notice.mention:
                options.mentioned.add(kind)
    out.extend(_successes(successes, options))
    return out


def _successes(items: list[tuple[Work, Notice]], options: Options) -> list[Outgoing]:
    if not items:
        return []
    if options.success_notices == "off":
        return [Outgoing(None, items, success=True)]
    if options.success_notices == "each":
        out = []
        for work, notice in items:
            link = work.links.get(notice.backup.id) if notice.backup else None
            actions = None
            if options.download_buttons and notice.backup is not None and _download(work, notice) is not None:
                actions = download_actions(work.key, notice.backup.id)
            message = render_success(notice, work.info, None if options.download_buttons else link, actions)
            out.append(Outgoing(message, [(work, notice)], success=True))
        return out
    listed = [(n, w.info, w.links.get(n.backup.id) if n.backup else None) for w, n in items]
    buttons = [_download(w, n) for w, n in items] if options.download_buttons else None
    parts = render_digest(listed, threaded=options.threaded_successes, buttons=buttons)
    return [
        Outgoing(
            part.message,
            [items[i] for i in part.items],
            success=True,
            after_head=part.in_thread,
            head=not part.items,
        )
        for part in parts
    ]
