"""Stage `unreadable`: a state record that cannot be read (corrupt, or written by a newer version) is its
database's problem, never the check's. The record is left exactly as it is (never overwritten) until it reads
again or is removed by hand; its "cannot check" incident lives in a record of its own (`__unreadable__/...`),
so it is announced once, reminded, and resolved when the record reads again."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from backup_monitor.check.model import Run, Work
from backup_monitor.config import Settings, Target, state_key
from backup_monitor.messages import DatabaseInfo
from backup_monitor.records import Record
from backup_monitor.rules import Evaluation, Kind, Notice, Phase, remind_notice, resolve_notice
from backup_monitor.state.base import ConflictError, StateError

logger = logging.getLogger(__name__)

UNREADABLE_KEY_PREFIX = "__unreadable__/"
HOW_TO_FIX = "it is left as it is: restore it from a backup of the state, or delete it to start that database afresh"


def unreadable_key(settings: Settings) -> str:
    return settings.singleton_key(UNREADABLE_KEY_PREFIX, ",".join(settings.regions))


def _keyed_on_addons(record: Record) -> Record:
    """Incidents stored by an older version under `region/app/addon_id`, keyed on `region/addon_id` as now."""
    renamed = {}
    for key, incident in record.incidents.items():
        parts = key.split("/")
        renamed[state_key(parts[0], parts[2]) if len(parts) == 3 else key] = incident
    return record if renamed.keys() == record.incidents.keys() else record.evolve(incidents=renamed)


def unreadable_work(run: Run, checked: Mapping[str, Target], unreadable: Mapping[str, str]) -> Work | None:
    """The work item that announces, reminds and resolves the unreadable records of `checked` targets."""
    settings, clients, now = run.settings, run.clients, run.now
    key = unreadable_key(settings)
    try:
        record = clients.store.load_many([key]).get(key) or Record(key=key)
    except StateError as exc:
        logger.error("cannot read the record of unreadable records", extra={"error": str(exc)})
        return None
    record = _keyed_on_addons(record)
    notices: list[Notice] = []
    infos: dict[str, DatabaseInfo] = {}
    for target_key, reason in sorted(unreadable.items()):
        logger.error("state record unreadable, database not checked", extra={"target": target_key, "error": reason})
        infos[target_key] = DatabaseInfo.of(checked[target_key], None)
        incident = record.incidents.get(target_key)
        if incident is None:
            notices.append(Notice(Kind.CANNOT_CHECK, Phase.OPEN, target_key, detail=f"{reason}: {HOW_TO_FIX}"))
        elif (notice := remind_notice(target_key, incident, now, settings.policy)) is not None:
            notices.append(notice)
    for target_key, incident in sorted(record.incidents.items()):
        if target_key in checked and target_key not in unreadable:
            infos[target_key] = DatabaseInfo.of(checked[target_key], None)
            notices.append(resolve_notice(target_key, incident, "Its state record can be read again"))
    if not notices:
        return None
    target = checked[next(iter(infos))] if infos else Target("", "", "")
    work = Work(target, record, DatabaseInfo.of(target, None), infos=infos)
    evaluation = Evaluation(tuple(notices), record, now)
    if run.dry_run:
        work.evaluation = evaluation
        return work
    try:
        work.claimed = run.claim(record)
    except ConflictError:
        logger.info("another check holds the record of unreadable records")
        return None
    except StateError as exc:
        logger.error("cannot claim the record of unreadable records", extra={"error": str(exc)})
        return None
    work.evaluation = evaluation
    return work
