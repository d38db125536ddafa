"""Does the dump inside look like its engine's? Checks that read each member once, with bounded buffers.

- PostgreSQL `.pgsql`: pg_dump's custom format (`PGDMP`, then sane integer sizes and format 1) or its tar format.
- MySQL `.sql`: text (no NUL byte anywhere) whose first 64 KiB hold SQL statements or comments.
- MongoDB `.bson` (and `.bson.gz`): documents whose little-endian int32 lengths chain to the end of the file,
  each ending with a zero byte.
- Redis: an RDB file (`REDIS` and a four-digit version, the EOF opcode before its checksum).
- Any other engine: no dump check (the container checks still apply).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from posixpath import basename

from backup_monitor.archives.container import Gunzip, MemberSink
from backup_monitor.archives.verdict import ArchiveDamagedError

HEAD_BYTES = 64 * 1024
BSON_MAX_DOCUMENT = 64 * 1024 * 1024  # MongoDB's limit is 16 MiB; mongodump allows a little more
_SQL_LINE = re.compile(
    rb"^\s*(--|/\*|#|(CREATE|INSERT|SET|DROP|LOCK|UNLOCK|USE|ALTER|START|BEGIN|COMMIT|DELIMITER|REPLACE)\b)",
    re.IGNORECASE | re.MULTILINE,
)
ENGINE_NAMES = {"postgresql": "PostgreSQL", "mysql": "MySQL", "mongodb": "MongoDB", "redis": "Redis"}


def engine_of(type_name: str) -> str:
    """The engine a database type names (`postgresql`, `mysql`, `mongodb`, `redis`), or "" for others."""
    lowered = type_name.lower().removeprefix("scalingo-")
    return next((engine for engine in ENGINE_NAMES if lowered.startswith(engine)), "")


def _show(head: bytes) -> str:
    return repr(bytes(head[:8]))[1:]


class _Head:
    """Keeps the first bytes, the last few and the count of one member."""

    def __init__(self, name: str, head: int = HEAD_BYTES, tail: int = 0) -> None:
        self.name = name
        self.head = bytearray()
        self.tail = b""
        self.size = 0
        self._head_limit = head
        self._tail_limit = tail
        self.problem: ArchiveDamagedError | None = None

    def feed(self, data: bytes) -> None:
        self.size += len(data)
        if len(self.head) < self._head_limit:
            self.head += data[: self._head_limit - len(self.head)]
        if self._tail_limit:
            self.tail = (self.tail + data[-self._tail_limit :])[-self._tail_limit :]

    def fail(self, code: str, detail: str) -> None:
        if self.problem is None:
            self.problem = ArchiveDamagedError(code, detail)

    def close(self) -> None:
        if self.size == 0:
            self.fail("empty_dump", f"the dump {basename(self.name)} is empty")
        else:
            self.judge()

    def judge(self) -> None:
        """Decide on the whole member; record a problem with `fail`."""


class PgDump(_Head):
    """pg_dump's custom format (`PGDMP`), or its tar format (ustar magic at offset 257)."""

    kind = ""

    def __init__(self, name: str) -> None:
        super().__init__(name, head=512)

    def judge(self) -> None:
        head, name = bytes(self.head), basename(self.name)
        if head.startswith(b"PGDMP"):
            if len(head) < 11:
                self.fail("wrong_format", f"{name} ends inside pg_dump's header")
                return
            int_size, off_size, form = head[8], head[9], head[10]
            if not (1 <= int_size <= 16 and 1 <= off_size <= 16) or form != 1:
                found = f"sizes {int_size}/{off_size}, format {form}"
                self.fail("wrong_format", f"{name} has a damaged pg_dump header ({found})")
                return
            self.kind = f"pg_dump custom format {head[5]}.{head[6]}"
        elif head[257:262] == b"ustar":
            if not head.startswith(b"toc.dat\0"):
                self.fail("wrong_format", f"{name} is a tar file but not pg_dump's: it does not start with toc.dat")
                return
            self.kind = "pg_dump tar format"
        else:
            self.fail(
                "wrong_format",
                f"{name} is not a pg_dump archive: it starts with {_show(head)} (expected PGDMP or a tar header)",
            )


class SqlText(_Head):
    """A text SQL dump: no NUL byte, and SQL statements or comments at the start of lines in its first 64 KiB."""

    kind = "SQL text"

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._nul_at: int | None = None

    def feed(self, data: bytes) -> None:
        if self._nul_at is None:
            at = data.find(0)
            if at >= 0:
                self._nul_at = self.size + at
        super().feed(data)

    def judge(self) -> None:
        name = basename(self.name)
        if self._nul_at is not None:
            self.fail("wrong_format", f"{name} is not a text SQL dump: a NUL byte at offset {self._nul_at}")
            return
        head = bytes(self.head)
        text = head.decode("utf-8", "replace")
        if text.count("\ufffd") > len(text) // 100 + 1:
            self.fail("wrong_format", f"{name} does not read as text: it starts with {_show(head)}")
        elif not _SQL_LINE.search(head):
            self.fail("wrong_format", f"{name} holds no SQL statement in its first {len(head)} bytes")


class BsonChain:
    """BSON documents back to back: each int32 length leads to the next, each document ends with 0x00."""

    kind = "BSON"

    def __init__(self, name: str) -> None:
        self.name = name
        self.size = 0
        self.documents = 0
        self._length = bytearray()
        self._skip = 0  # bytes left in the current document after its length
        self.problem: ArchiveDamagedError | None = None

    def feed(self, data: bytes) -> None:
        if self.problem is not None:
            return
        pos, end = 0, len(data)
        self.size += end
        while pos < end:
            if self._skip:
                take = min(self._skip, end - pos)
                pos += take
                self._skip -= take
                if not self._skip and data[pos - 1] != 0:
                    self._fail(f"document {self.documents} does not end with a zero byte")
                    return
                continue
            if not self._length and end - pos >= 4:
                length = int.from_bytes(data[pos : pos + 4], "little")
                pos += 4
            else:
                take = min(4 - len(self._length), end - pos)
                self._length += data[pos : pos + take]
                pos += take
                if len(self._length) < 4:
                    return
                length = int.from_bytes(self._length, "little")
                self._length.clear()
            self.documents += 1
            if not 5 <= length <= BSON_MAX_DOCUMENT:
                self._fail(f"document {self.documents} has an impossible length ({length})")
                return
            self._skip = length - 4

    def _fail(self, what: str) -> None:
        self.problem = ArchiveDamagedError("wrong_format", f"{basename(self.name)} is not valid BSON: {what}")

    def close(self) -> None:
        if self.problem is None and (self._skip or self._length):
            self._fail(f"it ends inside document {self.documents}")


class GzippedBson:
    """mongodump --gzip: a gzip member per collection, BSON inside."""

    kind = "BSON (gzip)"

    def __init__(self, name: str) -> None:
        self.name = name
        self._gunzip = Gunzip()
        self._bson = BsonChain(name)
        self.problem: ArchiveDamagedError | None = None

    @property
    def size(self) -> int:
        return self._bson.size

    def feed(self, data: bytes) -> None:
        if self.problem is not None:
            return
        try:
            for piece in self._gunzip.feed(data):
                self._bson.feed(piece)
        except ArchiveDamagedError as exc:
            self.problem = ArchiveDamagedError("wrong_format", f"{basename(self.name)}: {exc.detail}")

    def close(self) -> None:
        if self.problem is not None:
            return
        try:
            self._gunzip.finish()
        except ArchiveDamagedError as exc:
            self.problem = ArchiveDamagedError("wrong_format", f"{basename(self.name)}: {exc.detail}")
            return
        self._bson.close()
        self.problem = self._bson.problem


class RedisRdb(_Head):
    """An RDB file: `REDIS` and a four-digit version; from version 5 on, the EOF opcode 0xFF before an 8-byte CRC."""

    kind = "Redis RDB"

    def __init__(self, name: str) -> None:
        super().__init__(name, head=16, tail=9)

    def judge(self) -> None:
        head, name = bytes(self.head), basename(self.name)
        if not head.startswith(b"REDIS") or not head[5:9].isdigit():
            self.fail("wrong_format", f"{name} is not a Redis RDB file: it starts with {_show(head)}")
            return
        version = int(head[5:9])
        eof_at = -9 if version >= 5 else -1
        if len(self.tail) < -eof_at or self.tail[eof_at] != 0xFF:
            self.fail("wrong_format", f"{name} does not end with the RDB end-of-file marker: it is cut short")
        else:
            self.kind = f"Redis RDB version {version}"


_SINGLE_DUMP: dict[str, tuple[str, type[_Head]]] = {
    "postgresql": (".pgsql", PgDump),
    "mysql": (".sql", SqlText),
    "redis": (".rdb", RedisRdb),
}


@dataclass
class DumpChecks:
    """The dump checks of one archive for one engine: opens a sink per dump member, decides at the end.

    PostgreSQL, MySQL and Redis dumps are found by their suffix; when no file has it, the archive's last file
    is taken as the dump (restore guides take the last entry) and must pass the same check.
    """

    engine: str
    sinks: list[_Head | BsonChain | GzippedBson] = field(default_factory=list)
    others: list[_Head] = field(default_factory=list)

    def open_member(self, name: str, size: int) -> MemberSink | None:
        lowered = name.lower()
        if self.engine in _SINGLE_DUMP:
            suffix, check = _SINGLE_DUMP[self.engine]
            if lowered.endswith(suffix):
                self.sinks.append(check(name))
                return self.sinks[-1]
            self.others = [check(name)]  # only the last one can stand in for the dump
            return self.others[0]
        sink: BsonChain | GzippedBson | None = None
        if self.engine == "mongodb" and lowered.endswith(".bson"):
            sink = BsonChain(name)
        elif self.engine == "mongodb" and lowered.endswith(".bson.gz"):
            sink = GzippedBson(name)
        if sink is not None:
            self.sinks.append(sink)
        return sink

    def finish(self) -> str:
        """Raise the first problem found; return what was checked, for people."""
        if not self.engine:
            return ""
        sinks = self.sinks or list(self.others)
        expected = {"postgresql": ".pgsql", "mysql": ".sql", "mongodb": ".bson", "redis": "Redis"}[self.engine]
        if not sinks:
            raise ArchiveDamagedError("no_dump", f"the archive holds no {expected} dump")
        for sink in sinks:
            if sink.problem is not None:
                raise sink.problem
        if self.engine == "mongodb" and not any(s.size for s in sinks):
            raise ArchiveDamagedError("empty_dump", f"every .bson file of the dump is empty ({len(sinks)} files)")
        kinds = sorted({getattr(s, "kind", "") for s in sinks})
        files = f"{len(sinks)} files" if len(sinks) > 1 else basename(sinks[0].name)
        return f"{', '.join(kinds)} ({files})"
