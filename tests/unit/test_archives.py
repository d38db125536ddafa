"""The streaming verifier on real dumps (made by the real tools) and on corrupt variants of them. No network."""

from __future__ import annotations

import gzip
import io
import tarfile
import zlib
from collections.abc import Iterator

import pytest

from backup_monitor.archives import Outcome, Verdict, verify_chunks
from backup_monitor.archives.container import OUTPUT_PIECE, Gunzip
from backup_monitor.archives.dumps import engine_of
from tests.support.archives import GOOD, good, members, repack, tar_bytes, variants

FOREVER = float("inf")


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


def check(data: bytes, type_name: str, listed: int | None = None, chunk: int = 4096, **kw: object) -> Verdict:
    options: dict[str, object] = {"max_bytes": 10**9, "deadline": FOREVER, **kw}
    return verify_chunks(pieces(data, chunk), type_name=type_name, listed_size=listed, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(GOOD))
@pytest.mark.parametrize("chunk", [1, 511, 4096, 1 << 20])
def test_each_real_dump_passes_whatever_the_chunking(name: str, chunk: int) -> None:
    data = good(name)
    verdict = check(data, GOOD[name], len(data), chunk)
    assert verdict.outcome is Outcome.OK, verdict
    assert verdict.received == len(data)
    assert "CRC and length" in verdict.detail
    assert "end marker" in verdict.detail


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("postgresql", "pg_dump custom format"),
        ("postgresql-tar-format", "pg_dump tar format"),
        ("mysql", "SQL text"),
        ("mongodb", "BSON (2 files)"),
        ("redis", "Redis RDB version"),
    ],
)
def test_the_success_detail_says_which_dump_check_ran(name: str, words: str) -> None:
    assert words in check(good(name), GOOD[name]).detail


CASES = [(name, variant) for name in sorted(GOOD) for variant in variants(name)]


@pytest.mark.parametrize(("name", "variant"), CASES, ids=[f"{n}-{v}" for n, v in CASES])
def test_each_corrupt_variant_is_caught_and_named(name: str, variant: str) -> None:
    case = variants(name)[variant]
    verdict = check(case.data, GOOD[name], case.listed_size)
    assert verdict.outcome is Outcome.FAILED, verdict
    assert verdict.code == case.code, verdict
    assert case.words in verdict.detail, verdict


@pytest.mark.parametrize("name", ["postgresql", "mysql", "redis"])
def test_a_damaged_dump_is_named_by_its_file(name: str) -> None:
    case = variants(name)["wrong magic"]
    dump = next(info.name for info, _ in members(good(name)) if info.isreg())
    assert dump in check(case.data, GOOD[name]).detail


def test_other_engines_get_the_container_checks_only() -> None:
    data = good("redis")
    assert check(data, "influxdb").outcome is Outcome.OK
    assert check(variants("redis")["wrong magic"].data, "elasticsearch").outcome is Outcome.OK
    assert check(variants("redis")["truncated"].data, "influxdb").code == "truncated"


def test_an_archive_without_the_engines_dump_fails() -> None:
    readme = tarfile.TarInfo("README.txt")
    archive = gzip.compress(tar_bytes([(readme, b"hello")]))
    verdict = check(archive, "postgresql")
    assert verdict.code == "wrong_format"
    assert (
        verdict.detail == "README.txt is not a pg_dump archive: it starts with 'hello' (expected PGDMP or a tar header)"
    )


def test_without_the_engines_suffix_the_last_file_is_taken_as_the_dump() -> None:
    (info, data), *_ = members(good("postgresql"))
    info.name = "backup.dump"
    readme = tarfile.TarInfo("README.txt")
    readme.size = 5
    verdict = check(gzip.compress(tar_bytes([(readme, b"hello"), (info, data)])), "postgresql")
    assert verdict.outcome is Outcome.OK
    assert "(backup.dump)" in verdict.detail


def test_mongodb_without_any_bson_file_has_no_dump() -> None:
    readme = tarfile.TarInfo("dump/README.txt")
    verdict = check(gzip.compress(tar_bytes([(readme, b"hello")])), "mongodb")
    assert (verdict.code, verdict.detail) == ("no_dump", "the archive holds no .bson dump")


def test_an_empty_tar_fails() -> None:
    assert check(gzip.compress(b"\0" * 10240), "mysql").code == "no_dump"


def test_an_empty_download_fails() -> None:
    assert check(b"", "mysql").code == "empty_archive"


def test_a_bson_file_cut_inside_a_document_fails() -> None:
    archive = repack(good("mongodb"), lambda n, d: d[:-3] if n.endswith("orders.bson") else d)
    verdict = check(archive, "mongodb")
    assert verdict.code == "wrong_format"
    assert "orders.bson" in verdict.detail
    assert "ends inside" in verdict.detail


def test_an_rdb_file_without_its_end_marker_fails() -> None:
    archive = repack(good("redis"), lambda n, d: d[:-20])
    assert "end-of-file marker" in check(archive, "redis").detail


def test_gzipped_bson_from_mongodump_gzip_is_checked_inside() -> None:
    renamed = []
    for info, data in members(good("mongodb")):
        if info.name.endswith(".bson"):
            info.name += ".gz"
            data = gzip.compress(data)
        renamed.append((info, data))
    archive = gzip.compress(tar_bytes(renamed))
    assert check(archive, "mongodb").outcome is Outcome.OK
    broken = [(i, d[:-10] if i.name.endswith(".gz") else d) for i, d in renamed]
    assert "gzip stream ends early" in check(gzip.compress(tar_bytes(broken)), "mongodb").detail


def test_long_member_names_from_pax_and_gnu_headers_are_read() -> None:
    (info, data), *_ = members(good("postgresql"))
    info.name = "./" + "a" * 150 + ".pgsql"
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        verdict = check(gzip.compress(tar_bytes([(info, data)], fmt)), "postgresql")
        assert verdict.outcome is Outcome.OK
        assert "a" * 150 + ".pgsql" in verdict.detail


def test_concatenated_gzip_members_are_one_stream() -> None:
    raw = gzip.decompress(good("mysql"))
    archive = gzip.compress(raw[:3000]) + gzip.compress(raw[3000:])
    verdict = check(archive, "mysql")
    assert verdict.outcome is Outcome.OK
    assert "2 members" in verdict.detail


def test_zero_padding_after_the_gzip_stream_is_tolerated_but_garbage_is_not() -> None:
    data = good("mysql")
    assert check(data + b"\0" * 700, "mysql").outcome is Outcome.OK
    verdict = check(data + b"garbage", "mysql")
    assert (verdict.code, verdict.detail) == ("gzip_corrupt", "data follows the end of the gzip stream")


def test_a_lone_zero_block_inside_the_tar_fails() -> None:
    raw = gzip.decompress(good("mongodb"))
    damaged = raw[:512] + b"\0" * 512 + raw[512:]
    assert check(gzip.compress(damaged), "mongodb").code == "tar_corrupt"


def test_a_damaged_tar_header_is_named() -> None:
    raw = bytearray(gzip.decompress(good("postgresql")))
    raw[148] ^= 0x01  # the header's checksum field
    verdict = check(gzip.compress(bytes(raw)), "postgresql")
    assert verdict.code == "tar_corrupt"
    assert "tar header 1 is damaged" in verdict.detail


def test_an_archive_over_the_limit_is_not_run_and_not_read_further() -> None:
    data = good("postgresql")
    verdict = check(data, "postgresql", chunk=1000, max_bytes=2500)
    assert (verdict.outcome, verdict.code) == (Outcome.NOT_RUN, "too_big")
    assert verdict.received <= 2500


def test_out_of_time_is_not_run() -> None:
    ticks = iter(range(1000))
    verdict = check(good("mongodb"), "mongodb", chunk=500, deadline=3.0, clock=lambda: float(next(ticks)))
    assert (verdict.outcome, verdict.code) == (Outcome.NOT_RUN, "out_of_time")


def test_decompressed_pieces_stay_small_whatever_the_ratio() -> None:
    # GIVEN 16 MiB of one byte, compressed about a thousand times
    bomb = gzip.compress(b"x" * (16 << 20), compresslevel=9)
    gunzip = Gunzip()
    # WHEN it is fed in one piece THEN no decompressed piece is larger than the bound
    largest = max(len(p) for p in gunzip.feed(bomb))
    gunzip.finish()
    assert largest <= OUTPUT_PIECE


def test_zlib_checks_the_length_field_too() -> None:
    data = bytearray(gzip.compress(b"hello" * 100))
    data[-1] ^= 0x01  # ISIZE
    gunzip = Gunzip()
    with pytest.raises(Exception, match="length check"):
        list(gunzip.feed(bytes(data)))
    assert zlib.crc32(b"") == 0


@pytest.mark.parametrize(
    ("type_name", "engine"),
    [("postgresql", "postgresql"), ("scalingo-mysql", "mysql"), ("MongoDB", "mongodb"), ("influxdb", "")],
)
def test_engine_of_type_names(type_name: str, engine: str) -> None:
    assert engine_of(type_name) == engine


def test_members_helper_reads_fixtures() -> None:
    assert [i.name for i, _ in members(good("redis"))] == ["20261127010000_shop-redis-9012.rdb"]
    assert io.BytesIO(good("redis")).read(2) == b"\x1f\x8b"
