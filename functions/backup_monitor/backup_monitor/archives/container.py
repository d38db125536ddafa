"""Push parsers for the container: gzip (every member, CRC and length checked) and tar (every member complete,
then the end-of-archive marker). Both take bytes as they come and keep only bounded buffers."""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Generator, Iterator
from typing import Protocol

from backup_monitor.archives import inflate
from backup_monitor.archives.inflate import Backend
from backup_monitor.archives.verdict import ArchiveDamagedError

BLOCK = 512
OUTPUT_PIECE = 1 << 20  # at most this many decompressed bytes per step, whatever the compression ratio
GZIP_MAGIC = b"\x1f\x8b"
LONG_NAME_LIMIT = 64 * 1024
PAX_LIMIT = 1 << 20
_DATA_TYPES = (
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
)


NOT_GZIP = "it is not a gzip file (wrong magic bytes)"
CRC_FAILS = "the gzip CRC check fails: the data is corrupt"
LENGTH_FAILS = "the gzip length check fails: the data is corrupt"
_DEFLATE = 8  # the only compression method gzip defines
_RESERVED_FLAGS = 0xE0
_OPTIONAL_FIELDS = (("extra", 0x04), ("name", 0x08), ("comment", 0x10), ("hcrc", 0x02))  # in their order


def _corrupt(what: str) -> ArchiveDamagedError:
    return ArchiveDamagedError("gzip_corrupt", f"the gzip data is corrupt ({what})")


class _MemberHeader:
    """Reads one gzip member's header (RFC 1952) as bytes come, checked as zlib checks it, keeping a few bytes:
    the fixed 10 bytes, then the optional fields its flags announce (extra, name, comment, header CRC)."""

    def __init__(self, crc32: Callable[[bytes, int], int]) -> None:
        self._crc32 = crc32
        self._steps = ["fixed"]  # the parts still to read, in order
        self._fixed = bytearray()  # magic, method, flags, mtime, xfl, os
        self._field = bytearray()  # the extra field's length, or the header CRC
        self._extra_left = -1  # extra field bytes still to skip (-1: its length not read yet)
        self._crc = 0  # of the header bytes before the header CRC

    @property
    def done(self) -> bool:
        return not self._steps

    def read(self, data: bytes) -> int:
        """Take header bytes from the start of `data`; how many were taken (all of them if the header goes on)."""
        pos = 0
        while pos < len(data) and self._steps:
            step = self._steps[0]
            if step == "fixed":
                pos = self._read_fixed(data, pos)
            elif step == "extra":
                pos = self._read_extra(data, pos)
            elif step == "hcrc":
                pos = self._read_hcrc(data, pos)
            else:  # the name or the comment: up to a NUL byte
                nul = data.find(0, pos)
                pos = self._take(data, pos, len(data) if nul < 0 else nul + 1, done=nul >= 0)
        return pos

    def _take(self, data: bytes, pos: int, end: int, *, done: bool) -> int:
        self._crc = self._crc32(data[pos:end], self._crc)
        if done:
            self._steps.pop(0)
        return end

    def _read_fixed(self, data: bytes, pos: int) -> int:
        had = len(self._fixed)
        end = min(len(data), pos + 10 - had)
        self._fixed += data[pos:end]
        if had < 2 <= len(self._fixed) and self._fixed[:2] != GZIP_MAGIC:
            raise ArchiveDamagedError("gzip_corrupt", NOT_GZIP)
        if had < 4 <= len(self._fixed):
            if self._fixed[2] != _DEFLATE:
                raise ArchiveDamagedError("gzip_corrupt", NOT_GZIP)  # zlib: "unknown compression method"
            if self._fixed[3] & _RESERVED_FLAGS:
                raise _corrupt("unknown header flags set")
        end = self._take(data, pos, end, done=len(self._fixed) == 10)
        if self.done:
            self._steps = [name for name, flag in _OPTIONAL_FIELDS if self._fixed[3] & flag]
        return end

    def _read_extra(self, data: bytes, pos: int) -> int:
        if self._extra_left < 0:
            end = min(len(data), pos + 2 - len(self._field))
            self._field += data[pos:end]
            if len(self._field) == 2:
                self._extra_left = int.from_bytes(self._field, "little")
                self._field.clear()
        else:
            end = min(len(data), pos + self._extra_left)
            self._extra_left -= end - pos
        return self._take(data, pos, end, done=not self._extra_left)

    def _read_hcrc(self, data: bytes, pos: int) -> int:
        end = min(len(data), pos + 2 - len(self._field))
        self._field += data[pos:end]
        if len(self._field) == 2:
            if int.from_bytes(self._field, "little") != self._crc & 0xFFFF:
                raise _corrupt("header crc mismatch")
            self._steps.pop(0)
        return end


class Gunzip:
    """Decompresses a gzip stream fed in pieces, every member's header, CRC-32 and length checked at its end.

    The deflate data goes through `inflate.backend()` (isal or zlib); the framing is read here, the same for both.
    """

    def __init__(self, backend: Backend | None = None) -> None:
        self._backend = backend or inflate.backend()
        self._stage = "header"  # header, body, trailer, between (the last member ended)
        self._header = _MemberHeader(self._backend.crc32)
        self._inflate = self._backend.inflater()
        self._trailer = bytearray()
        self._crc = 0
        self._size = 0
        self._pending = b""
        self._padding = False
        self.members = 1
        self.received = 0

    @property
    def inflater(self) -> str:
        """The deflate library this stream uses ("isal" or "zlib")."""
        return self._backend.name

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decompressed bytes of `data`, in pieces of at most OUTPUT_PIECE."""
        self.received += len(data)
        yield from self._feed(data)

    def _feed(self, data: bytes) -> Iterator[bytes]:
        # A loop, not a call per member: a piece may hold thousands of small members.
        while data:
            if self._stage == "between":
                data = self._pending + data
                self._pending = b""
                if self._padding or data[:1] == b"\0":
                    if data.count(0) != len(data):
                        raise ArchiveDamagedError("gzip_corrupt", "data follows the end of the gzip stream")
                    self._padding = True
                    return
                if data == GZIP_MAGIC[:1]:
                    self._pending = data
                    return
                if data[:2] != GZIP_MAGIC:
                    raise ArchiveDamagedError("gzip_corrupt", "data follows the end of the gzip stream")
                self._new_member()
            if self._stage == "header":
                data = data[self._header.read(data) :]
                if not self._header.done:
                    return
                self._stage = "body"
            if self._stage == "body":
                data = yield from self._inflate_body(data)
            elif self._stage == "trailer":
                data = self._read_trailer(data)

    def _inflate_body(self, data: bytes) -> Generator[bytes, None, bytes]:
        """Inflate `data`, yielding the output; at the member's end, what follows its trailer."""
        try:
            out = self._inflate.decompress(data, OUTPUT_PIECE)
            while True:
                self._crc = self._backend.crc32(out, self._crc)
                self._size += len(out)
                if self._inflate.eof:
                    # The trailer is checked before the last piece goes out, as zlib's gzip mode does: a damaged
                    # member is named by its CRC rather than by what its garbage does to the tar.
                    self._stage = "trailer"
                    rest = self._read_trailer(self._inflate.unused_data)
                    if out:
                        yield out
                    return rest
                if out:
                    yield out
                # At the stream's end zlib may leave what follows in unconsumed_tail too (when the output filled
                # max_length exactly), so eof is tested first: asking again would never end.
                if not self._inflate.unconsumed_tail:
                    return b""
                out = self._inflate.decompress(self._inflate.unconsumed_tail, OUTPUT_PIECE)
        except self._backend.error as exc:
            raise _corrupt(self._backend.describe(exc)) from None

    def _read_trailer(self, data: bytes) -> bytes:
        """Take the member's CRC-32 and length (8 bytes) from `data`, checked as they come; return what follows."""
        had = len(self._trailer)
        take = 8 - had
        self._trailer += data[:take]
        if had < 4 <= len(self._trailer) and int.from_bytes(self._trailer[:4], "little") != self._crc:
            raise ArchiveDamagedError("gzip_corrupt", CRC_FAILS)
        if len(self._trailer) < 8:
            return b""
        if int.from_bytes(self._trailer[4:], "little") != self._size & 0xFFFFFFFF:
            raise ArchiveDamagedError("gzip_corrupt", LENGTH_FAILS)
        self._stage = "between"
        return data[take:]

    def _new_member(self) -> None:
        self._stage = "header"
        self._header = _MemberHeader(self._backend.crc32)
        self._inflate = self._backend.inflater()
        self._trailer.clear()
        self._crc = self._size = 0
        self.members += 1

    def finish(self) -> None:
        """At the end of the download: the last member must have ended (its checks then passed)."""
        if self.received == 0:
            raise ArchiveDamagedError("empty_archive", "the archive is empty (0 bytes)")
        if self._stage != "between" or self._pending:
            raise ArchiveDamagedError("truncated", "the gzip stream ends early: the archive is truncated")


class MemberSink(Protocol):
    """Receives one tar member's data as it streams."""

    def feed(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class TarWalker:
    """Walks a tar stream fed in pieces: headers checked, every member's data counted, the end marker required.

    `open_member(name, size)` returns a sink for a regular file's data, or None to skip it.
    """

    def __init__(self, open_member: Callable[[str, int], MemberSink | None]) -> None:
        self._open_member = open_member
        self._header = bytearray()
        self._left = 0  # data bytes of the current member still to come
        self._pad = 0  # padding bytes after them
        self._sink: MemberSink | None = None
        self._capture: bytearray | None = None  # GNU long name or pax data, for the next header
        self._capture_type = b""
        self._next_name: str | None = None
        self._zero_blocks = 0
        self._name = ""
        self._size = 0
        self.ended = False
        self.members = 0
        self.files = 0
        self.unpacked = 0

    def feed(self, data: bytes) -> None:
        self.unpacked += len(data)
        pos, end = 0, len(data)
        while pos < end:
            if self.ended:
                return  # after the end marker: record padding, ignored as tar does
            if self._left:
                take = min(self._left, end - pos)
                piece = data if take == end and pos == 0 else data[pos : pos + take]
                if self._sink is not None:
                    self._sink.feed(piece)
                if self._capture is not None:
                    self._capture += piece
                self._left -= take
                pos += take
                if not self._left:
                    self._member_done()
            elif self._pad:
                take = min(self._pad, end - pos)
                self._pad -= take
                pos += take
            else:
                take = min(BLOCK - len(self._header), end - pos)
                self._header += data[pos : pos + take]
                pos += take
                if len(self._header) == BLOCK:
                    block = bytes(self._header)
                    self._header.clear()
                    self._on_header(block)

    def _on_header(self, block: bytes) -> None:
        if block.count(0) == BLOCK:
            self._zero_blocks += 1
            if self._zero_blocks == 2:
                self.ended = True
            return
        if self._zero_blocks:
            raise ArchiveDamagedError("tar_corrupt", f"a lone zero block after {self.members} members: tar stops there")
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            raise ArchiveDamagedError("tar_corrupt", f"tar header {self.members + 1} is damaged ({exc})") from None
        self.members += 1
        size = info.size
        carries_data = info.isreg() or info.type not in tarfile.SUPPORTED_TYPES or info.type in _DATA_TYPES
        if not carries_data:
            size = 0
        name = self._next_name if self._next_name is not None else info.name
        self._name, self._size = name, size
        if info.type in _DATA_TYPES:
            self._capture = bytearray() if size <= PAX_LIMIT else None
            self._capture_type = info.type
        else:
            self._next_name = None
            if info.isreg():
                self.files += 1
                self._sink = self._open_member(name, size)
        self._left = size
        self._pad = -size % BLOCK
        if not size:
            self._member_done()

    def _member_done(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._sink = None
        if self._capture is not None:
            self._next_name = _name_from(self._capture_type, bytes(self._capture)) or self._next_name
            self._capture = None

    def finish(self) -> None:
        """At the end of the stream: the last member complete, then the end-of-archive marker."""
        if self.ended:
            if not self.files:
                raise ArchiveDamagedError("no_dump", "the archive holds no file")
            return
        if self._left:
            got = self._size - self._left
            raise ArchiveDamagedError(
                "tar_truncated", f"the tar member {self._name} is cut short ({got} of {self._size} bytes)"
            )
        if self._header or self._pad:
            raise ArchiveDamagedError("tar_truncated", "the tar archive ends inside a header or its padding")
        raise ArchiveDamagedError(
            "no_end_marker", f"the tar archive has no end-of-archive marker after its {self.members} members"
        )


def _name_from(kind: bytes, data: bytes) -> str | None:
    """The member name a GNU long-name or pax header gives the next member."""
    if kind == tarfile.GNUTYPE_LONGNAME:
        return data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    if kind in (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE):
        pos = 0
        while pos < len(data):
            length_text, _, rest = data[pos:].partition(b" ")
            try:
                length = int(length_text)
            except ValueError:
                return None
            record = rest[: length - len(length_text) - 1]
            key, _, value = record.rstrip(b"\n").partition(b"=")
            if key == b"path":
                return value.decode("utf-8", "surrogateescape")
            if length <= 0:
                return None
            pos += length
    return None
