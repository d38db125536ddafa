"""Archives for the fake Scalingo to serve: small look-alike dumps for the demo, and a generated stream of any
size for the benchmark (made on the fly from a few pre-compressed pieces: never on disk, never whole in memory).

The tests use real dumps made by the real tools instead (tests/fixtures/archives/).
"""

from __future__ import annotations

import gzip
import io
import random
import struct
import tarfile
import zlib
from collections.abc import Callable, Iterator

_BSON_DOC = b"\x15\x00\x00\x00\x02name\x00\x06\x00\x00\x00alice\x00\x00"  # {"name": "alice"}


def _dump(engine: str) -> tuple[str, bytes]:
    if engine == "postgresql":
        return ".pgsql", b"PGDMP\x01\x0e\x00\x04\x08\x01" + b"\x00" * 200
    if engine == "mysql":
        return ".sql", b"-- MySQL dump\nCREATE TABLE t (id INT);\nINSERT INTO t VALUES (1),(2);\n"
    if engine == "redis":
        return ".rdb", b"REDIS0011\xfa\x09redis-ver\x057.0.0\xfe\x00\xfb\x01\x00\x00\x01k\x01v\xff" + b"\x00" * 8
    if engine == "mongodb":
        return ".bson", _BSON_DOC * 20
    return ".dump", b"data"


def small_archive(engine: str, name: str, *, corrupt: bool = False) -> bytes:
    """`<name>.tar.gz` holding one small dump that looks like `engine`'s; `corrupt` flips one byte of it."""
    suffix, data = _dump(engine)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(f"{name}{suffix}")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    archive = bytearray(gzip.compress(buffer.getvalue(), mtime=0))
    if corrupt:
        archive[len(archive) // 2] ^= 0x20
    return bytes(archive)


def _deflate(data: bytes, finish: bool = False) -> bytes:
    """Raw deflate of `data` with no history, ending byte-aligned, so such pieces can be concatenated."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush(zlib.Z_FINISH if finish else zlib.Z_FULL_FLUSH)


def generated_archive(min_size: int, name: str = "bench", seed: int = 7) -> tuple[Callable[[], Iterator[bytes]], int]:
    """A valid `<name>.tar.gz` of at least `min_size` bytes holding one SQL dump; returns (chunks, exact size).

    One megabyte of SQL-like text is compressed once and its deflate bytes repeated, so serving gigabytes costs
    no compression; the gzip trailer's CRC is computed once over the whole stream.
    """
    rng = random.Random(seed)
    rows = [
        f"INSERT INTO `orders` VALUES ({rng.randrange(10**7)},'customer {rng.randrange(10**5)}',"  # noqa: S608
        f"'2026-11-{rng.randrange(1, 28):02d} {rng.randrange(24):02d}:{rng.randrange(60):02d}:00',"
        f"{rng.randrange(10**6) / 100:.2f},'{rng.choice(['paid', 'shipped', 'refunded', 'open'])}');\n"
        for _ in range(12_000)
    ]
    unit = "".join(rows).encode()[: 1 << 20]
    head = b"-- MySQL dump\nSET NAMES utf8mb4;\n"
    unit_z = _deflate(unit)
    header_overhead = 10 + 512 + 8
    units = max(1, -(-(min_size - header_overhead) // len(unit_z)))
    member_size = len(head) + units * len(unit)
    info = tarfile.TarInfo(f"{name}.sql")
    info.size = member_size
    info.mtime = 1_795_000_000
    tar_header = info.tobuf(tarfile.GNU_FORMAT)
    tail = b"\0" * (-member_size % 512) + b"\0" * 1024
    tail += b"\0" * (-(len(tar_header) + member_size + len(tail)) % tarfile.RECORDSIZE)
    first = _deflate(tar_header + head)
    last = _deflate(tail, finish=True)
    crc = zlib.crc32(tar_header + head)
    for _ in range(units):
        crc = zlib.crc32(unit, crc)
    crc = zlib.crc32(tail, crc)
    length = len(tar_header) + member_size + len(tail)
    gzip_header = b"\x1f\x8b\x08\x00" + struct.pack("<I", 0) + b"\x00\xff"
    trailer = struct.pack("<II", crc, length & 0xFFFFFFFF)
    size = len(gzip_header) + len(first) + units * len(unit_z) + len(last) + len(trailer)

    def chunks() -> Iterator[bytes]:
        yield gzip_header + first
        for _ in range(units):
            yield unit_z
        yield last + trailer

    return chunks, size
