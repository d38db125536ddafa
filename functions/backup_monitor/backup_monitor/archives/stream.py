"""One pass over an archive's bytes: count them, gunzip, walk the tar, check the dump. Nothing kept whole."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from backup_monitor.archives.container import Gunzip, TarWalker
from backup_monitor.archives.dumps import ENGINE_NAMES, DumpChecks, engine_of
from backup_monitor.archives.verdict import ArchiveDamagedError, CannotVerifyError, Outcome, Verdict


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def verify_chunks(
    chunks: Iterable[bytes],
    *,
    type_name: str,
    listed_size: int | None,
    max_bytes: int,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
) -> Verdict:
    """Check an archive arriving as `chunks`; stops at the first damage, past `max_bytes` or past `deadline`."""
    start = clock()
    gunzip = Gunzip()
    dumps = DumpChecks(engine_of(type_name))
    tar = TarWalker(dumps.open_member)

    def verdict(outcome: Outcome, code: str, detail: str) -> Verdict:
        return Verdict(outcome, code, detail, gunzip.received, tar.unpacked, round(clock() - start, 3))

    try:
        for chunk in chunks:
            if gunzip.received + len(chunk) > max_bytes:
                raise CannotVerifyError(
                    "too_big", f"the archive is larger than the {_mb(max_bytes)} allowed (VERIFY_MAX_GB)"
                )
            if listed_size and gunzip.received + len(chunk) > listed_size:
                raise ArchiveDamagedError(
                    "size_mismatch", f"the download is longer than the {listed_size} bytes the backup list says"
                )
            for piece in gunzip.feed(chunk):
                tar.feed(piece)
            if clock() > deadline:
                raise CannotVerifyError(
                    "out_of_time", f"out of time after {_mb(gunzip.received)} in {clock() - start:.0f} s"
                )
        try:
            gunzip.finish()
            tar.finish()
        except ArchiveDamagedError as exc:
            if listed_size and gunzip.received != listed_size:
                exc.detail += f" (received {gunzip.received} of the {listed_size} bytes listed)"
            raise
        dump = dumps.finish()
        if listed_size and gunzip.received != listed_size:
            raise ArchiveDamagedError(
                "size_mismatch",
                f"received {gunzip.received} bytes where the backup list says {listed_size}",
            )
    except ArchiveDamagedError as exc:
        return verdict(Outcome.FAILED, exc.code, exc.detail)
    except CannotVerifyError as exc:
        return verdict(Outcome.NOT_RUN, exc.code, exc.detail)
    engine = ENGINE_NAMES.get(dumps.engine)
    checked = f"gzip ({gunzip.members} member{'s' if gunzip.members > 1 else ''}, CRC and length), "
    checked += f"tar ({tar.members} entr{'ies' if tar.members > 1 else 'y'}, end marker)"
    checked += f", {engine} dump: {dump}" if engine else " (no dump check for this engine)"
    return verdict(Outcome.OK, "", checked)
