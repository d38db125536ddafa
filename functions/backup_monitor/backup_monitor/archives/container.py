"""Push parsers for the container: gzip (every member, CRC and length checked) and tar (every member complete,
then the end-of-archive marker). Both take bytes as they come and keep only bounded buffers."""

from __future__ import annotations

import tarfile
import zlib
from collections.abc import Callable, Iterator
from typing import Protocol

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


def _gzip_problem(exc: zlib.error) -> str:
    text = str(exc)
    if "incorrect header check" in text or "unknown compression method" in text:
        return "it is not a gzip file (wrong magic bytes)"
    if "incorrect data check" in text:
        return "the gzip CRC check fails: the data is corrupt"
    if "incorrect length check" in text:
        return "the gzip length check fails: the data is corrupt"
    return f"the gzip data is corrupt ({text.partition(': ')[2] or text})"


class Gunzip:
    """Decompresses a gzip stream fed in pieces; zlib checks each member's CRC-32 and length at its end."""

    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self._between = False  # the last member ended; more bytes must start a member or be zero padding
        self._pending = b""
        self._padding = False
        self.members = 1
        self.received = 0

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decompressed bytes of `data`, in pieces of at most OUTPUT_PIECE."""
        self.received += len(data)
        yield from self._feed(data)

    def _feed(self, data: bytes) -> Iterator[bytes]:
        if self._between:
            data = self._pending + data
            self._pending = b""
            if not data:
                return
            if self._padding or data[:1] == b"\0":
                if data.count(0) != len(data):
                    raise ArchiveDamagedError("gzip_corrupt", "data follows the end of the gzip stream")
                self._padding = True
                return
            if len(data) < 2 and data == GZIP_MAGIC[:1]:
                self._pending = data
                return
            if data[:2] != GZIP_MAGIC:
                raise ArchiveDamagedError("gzip_corrupt", "data follows the end of the gzip stream")
            self._inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            self._between = False
            self.members += 1
        try:
            out = self._inflate.decompress(data, OUTPUT_PIECE)
            if out:
                yield out
            while self._inflate.unconsumed_tail:
                out = self._inflate.decompress(self._inflate.unconsumed_tail, OUTPUT_PIECE)
                if out:
                    yield out
        except zlib.error as exc:
            raise ArchiveDamagedError("gzip_corrupt", _gzip_problem(exc)) from None
        if self._inflate.eof:
            self._between = True
            rest = self._inflate.unused_data
            if rest:
                yield from self._feed(rest)

    def finish(self) -> None:
        """At the end of the download: the last member must have ended (its checks then passed)."""
        if self.received == 0:
            raise ArchiveDamagedError("empty_archive", "the archive is empty (0 bytes)")
        if not self._between or self._pending:
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
