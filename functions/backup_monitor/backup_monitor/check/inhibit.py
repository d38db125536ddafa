"""Stage `inhibit`: one cause, one incident (Alertmanager's inhibit rules).

When Scalingo's API fails for most databases of a region in one check, that is one incident for the region
("Scalingo API failing in osc-fr1", critical, one mention), kept in its own record (`__outage__/<region>`), and
the per-database "cannot check" notices of that region are held (their failure counts still grow). When most
databases read again, the region's incident closes and what still fails is reported database by database.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from backup_monitor.check.model import Run, Summary, Work
from backup_monitor.config import Target, shard_key
from backup_monitor.messages import DatabaseInfo
from backup_monitor.records import Record
from backup_monitor.rules import Evaluation, Kind, evaluate_outage, region_failing
from backup_monitor.state.base import ConflictError, StateError

logger = logging.getLogger(__name__)

OUTAGE_KEY_PREFIX = "__outage__/"


def outage_key(region: str, shard: str = "") -> str:
    """The record of a Scalingo API outage in `region`, as one shard's token sees it."""
    return shard_key(OUTAGE_KEY_PREFIX, region, shard)


def _read(work: Work) -> bool:
    """Whether this check tried to read the database (and so counts as evidence about its region's API)."""
    return not work.left and not work.gone and (work.evaluation is not None or work.failed)


def hold_and_judge(works: Sequence[Work], final: list[Work], run: Run, summary: Summary) -> list[Work]:
    """The final batch: each region's outage record first, with "cannot check" notices held where one cause
    explains them."""
    settings, clients, now = run.settings, run.clients, run.now
    regions = sorted({w.target.region for w in works})
    try:
        stored = clients.store.load_many([outage_key(r, settings.shard) for r in regions])
    except StateError as exc:
        logger.warning("could not read the outage records; judging databases one by one", extra={"error": str(exc)})
        return final
    outages: list[Work] = []
    for region in regions:
        mine = [w for w in works if w.target.region == region and _read(w)]
        failing = [w for w in mine if w.failed and w.api_failed]
        key = outage_key(region, settings.shard)
        record = stored.get(key) or Record(key=key)
        sample = failing[0].failure if failing else ""
        evaluation = evaluate_outage(record, region, len(failing), len(mine), sample, now, settings.policy)
        is_open = Kind.API_OUTAGE.value in evaluation.next_record.incidents
        if region_failing(len(failing), len(mine)) or (is_open and failing):
            logger.warning(
                "scalingo's api fails for most databases of the region: one incident, not one each",
                extra={"target": region, "count": len(failing), "error": sample},
            )
            for work in failing:
                work.held = True
                if work.evaluation is not None and work.evaluation.notices:
                    summary.held += len(work.evaluation.notices)
                    work.evaluation = replace(work.evaluation, notices=())
        outage = _outage_work(region, record, evaluation, run)
        if outage is not None:
            outages.append(outage)
    return [*outages, *final]


def _outage_work(region: str, record: Record, evaluation: Evaluation, run: Run) -> Work | None:
    target = Target(region, "Scalingo API", "outage")
    work = Work(target, record, DatabaseInfo(region, "Scalingo API", ""), outage_region=region)
    if run.dry_run:
        work.evaluation = evaluation
        return work if evaluation.notices else None
    try:
        if evaluation.notices:
            work.claimed = run.claim(record)
            work.evaluation = evaluation
            return work
        if evaluation.base.content() != record.content():
            run.save(replace(evaluation.base, version=record.version))
    except ConflictError:
        logger.info("another check holds the outage record", extra={"target": record.key})
    except StateError as exc:
        logger.error("cannot write the outage record", extra={"target": record.key, "error": str(exc)})
    return None
