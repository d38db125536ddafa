"""The archive fixtures (real dumps made by tests/fixtures/archives/make_fixtures.sh) and corrupt variants of them.

Variants are made at test time from the good archives: cut, flipped, re-packed with a damaged dump.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "archives"
# fixture file -> the database type it belongs to
GOOD = {
    "postgresql": "postgresql",
    "postgresql-tar-format": "postgresql",
    "mysql": "mysql",
    "mongodb": "mongodb",
    "redis": "redis",
}


def good(name: str) -> bytes:
    return (FIXTURES / f"{name}.tar.gz").read_bytes()


def members(archive: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    """Every entry of a (small) archive with its data."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for info in tar:
            data = tar.extractfile(info).read() if info.isreg() else b""  # type: ignore[union-attr]
            out.append((info, data))
    return out


def tar_bytes(entries: list[tuple[tarfile.TarInfo, bytes]], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for info, data in entries:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def repack(archive: bytes, change: Callable[[str, bytes], bytes | None]) -> bytes:
    """The archive with each regular file's data replaced by `change(name, data)` (None: dropped)."""
    entries = []
    for info, data in members(archive):
        if info.isreg():
            new = change(info.name, data)
            if new is None:
                continue
            data = new
        entries.append((info, data))
    return gzip.compress(tar_bytes(entries), mtime=0)


def is_dump(name: str) -> bool:
    return name.endswith((".pgsql", ".sql", ".bson", ".rdb"))


def _wrong_magic(name: str, data: bytes) -> bytes:
    if not is_dump(name):
        return data
    if name.endswith(".bson"):
        return (3).to_bytes(4, "little") + data[4:]  # an impossible document length
    if name.endswith(".sql"):
        return b"\x89PNG\r\n\x1a\n\x00\x00" + data  # binary, not SQL text
    if name.endswith(".pgsql") and not data.startswith(b"PGDMP"):
        return data[:257] + b"xxxxx" + data[262:]  # pg_dump's tar format: no ustar magic
    return data[:3] + b"X" + data[4:]  # PGDMP -> PGDXP, REDIS -> REDXS


def _layout(raw_tar: bytes) -> tuple[int, int]:
    """(end of the last member's padded data, middle of the first dump's data) in a tar."""
    end, middle = 0, 0
    with tarfile.open(fileobj=io.BytesIO(raw_tar), mode="r:") as tar:
        for info in tar:
            size = info.size if info.isreg() else 0
            end = max(end, info.offset_data + -(-size // 512) * 512)
            if not middle and info.isreg() and is_dump(info.name) and size:
                middle = info.offset_data + size // 2
    return end, middle


@dataclass(frozen=True)
class Variant:
    """A damaged archive, the size the backup list gives, and the failure code it must be named by."""

    data: bytes
    listed_size: int | None
    code: str
    words: str  # a phrase the verdict's detail must contain


def variants(name: str) -> dict[str, Variant]:
    """The corrupt variants of one good fixture."""
    data = good(name)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    crc = bytearray(data)
    crc[-8] ^= 0x01  # the gzip trailer's CRC-32
    raw_tar = gzip.decompress(data)
    end, middle = _layout(raw_tar)
    return {
        "truncated": Variant(data[: len(data) * 2 // 3], len(data), "truncated", "truncated"),
        "byte flipped": Variant(bytes(flipped), len(data), "gzip_corrupt", "corrupt"),
        "crc flipped": Variant(bytes(crc), len(data), "gzip_corrupt", "CRC"),
        "wrong magic": Variant(wrong := repack(data, _wrong_magic), len(wrong), "wrong_format", "not"),
        "empty dump": Variant(
            empty := repack(data, lambda n, d: b"" if is_dump(n) else d), len(empty), "empty_dump", "empty"
        ),
        "size mismatch": Variant(data, len(data) + 100, "size_mismatch", "backup list says"),
        "not gzip": Variant(raw_tar, len(raw_tar), "gzip_corrupt", "not a gzip file"),
        "no end marker": Variant(
            cut := gzip.compress(raw_tar[:end], mtime=0), len(cut), "no_end_marker", "end-of-archive"
        ),
        "tar member cut": Variant(
            short := gzip.compress(raw_tar[:middle], mtime=0), len(short), "tar_truncated", "cut short"
        ),
    }
