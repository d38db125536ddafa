"""The streaming verifier on real dumps (made by the real tools) and on corrupt variants of them. No network.

Every test runs once per deflate library (isal, zlib): both must give the same verdicts.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zlib
from collections.abc import Iterator

import pytest

from backup_monitor.archives import Outcome, Verdict, inflate, verify_chunks
from backup_monitor.archives.container import OUTPUT_PIECE, Gunzip
from backup_monitor.archives.dumps import engine_of
from backup_monitor.archives.verdict import ArchiveDamagedError
from tests.support.archives import GOOD, good, members, repack, tar_bytes, variants

FOREVER = float("inf")


@pytest.fixture(autouse=True, params=["isal", "zlib"])
def inflater(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test once with isal's inflate and once with zlib's, whichever the process would pick."""
    name: str = request.param
    if name not in inflate.BACKENDS:
        pytest.skip(f"{name} is not installed")
    monkeypatch.setattr(inflate, "INFLATER", name)
    return name


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


def test_the_length_field_is_checked_too(inflater: str) -> None:
    data = bytearray(gzip.compress(b"hello" * 100))
    data[-1] ^= 0x01  # ISIZE
    gunzip = Gunzip()
    assert gunzip.inflater == inflater
    with pytest.raises(ArchiveDamagedError, match="the gzip length check fails"):
        list(gunzip.feed(bytes(data)))


@pytest.mark.parametrize(
    ("type_name", "engine"),
    [("postgresql", "postgresql"), ("scalingo-mysql", "mysql"), ("MongoDB", "mongodb"), ("influxdb", "")],
)
def test_engine_of_type_names(type_name: str, engine: str) -> None:
    assert engine_of(type_name) == engine


def test_members_helper_reads_fixtures() -> None:
    assert [i.name for i, _ in members(good("redis"))] == ["20261127010000_shop-redis-9012.rdb"]
    assert io.BytesIO(good("redis")).read(2) == b"\x1f\x8b"


# The gzip framing is read by Gunzip itself, the same with both libraries. Each test below pins a case where
# isal's own gzip mode (or zlib's with max_length) would not give today's verdict.


def member(payload: bytes, flags: int = 0, fields: bytes = b"", method: int = 8) -> bytes:
    """One gzip member made by hand: a header with `flags` and the optional `fields` they announce (the header
    CRC is added when flag 0x02 is set), the raw deflate of `payload`, then its CRC-32 and length."""
    header = b"\x1f\x8b" + bytes([method, flags]) + b"\0\0\0\0\0\x03" + fields
    if flags & 0x02:
        header += (zlib.crc32(header) & 0xFFFF).to_bytes(2, "little")
    deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflate.compress(payload) + deflate.flush()
    return header + body + zlib.crc32(payload).to_bytes(4, "little") + len(payload).to_bytes(4, "little")


def mysql_tar() -> bytes:
    return gzip.decompress(good("mysql"))


@pytest.mark.parametrize("chunk", [1, 2, 3, 4096])
def test_every_optional_header_field_is_read_whatever_the_chunking(chunk: int) -> None:
    # GIVEN a member whose header has an extra field, a name, a comment and a header CRC (isal's own gzip mode
    # fails a valid header CRC when the header comes in pieces)
    archive = member(mysql_tar(), 0x02 | 0x04 | 0x08 | 0x10, b"\x04\x00abcd" + b"backup.tar\0" + b"made by hand\0")
    # WHEN verified THEN it passes
    assert check(archive, "mysql", chunk=chunk).outcome is Outcome.OK


@pytest.mark.parametrize("chunk", [1, 4096])
def test_a_header_crc_that_does_not_match_fails(chunk: int) -> None:
    archive = bytearray(member(mysql_tar(), 0x02))
    archive[10] ^= 0x01  # the header CRC's low byte
    verdict = check(bytes(archive), "mysql", chunk=chunk)
    assert (verdict.code, verdict.detail) == ("gzip_corrupt", "the gzip data is corrupt (header crc mismatch)")


@pytest.mark.parametrize("flag", [0x20, 0x40, 0x80])
def test_reserved_header_flags_fail_as_zlib_says(flag: int) -> None:
    # isal's own gzip mode accepts them; zlib does not, and neither did this verifier
    verdict = check(member(mysql_tar(), flag), "mysql")
    assert (verdict.code, verdict.detail) == ("gzip_corrupt", "the gzip data is corrupt (unknown header flags set)")


def test_a_compression_method_other_than_deflate_is_not_gzip() -> None:
    verdict = check(member(mysql_tar(), method=9), "mysql")
    assert (verdict.code, verdict.detail) == ("gzip_corrupt", "it is not a gzip file (wrong magic bytes)")


def test_a_wrong_length_with_the_right_crc_is_named_as_the_length() -> None:
    # isal's own gzip mode says "Incorrect checksum" for a CRC, a length or a header CRC alike
    archive = bytearray(member(mysql_tar()))
    archive[-1] ^= 0x01
    assert check(bytes(archive), "mysql").detail == "the gzip length check fails: the data is corrupt"


@pytest.mark.parametrize("chunk", [1, 4096])
def test_a_wrong_crc_fails_as_soon_as_its_four_bytes_are_in(chunk: int) -> None:
    archive = bytearray(member(mysql_tar()))
    archive[-8] ^= 0x01
    verdict = check(bytes(archive[:-3]), "mysql", chunk=chunk)  # the length cut short: the CRC already tells
    assert verdict.detail == "the gzip CRC check fails: the data is corrupt"


def test_a_damaged_deflate_stream_is_named_in_the_librarys_words(inflater: str) -> None:
    # GIVEN a member whose deflate data starts with the reserved block type 3
    archive = member(b"hello")[:10] + b"\x07\x00\x00" + b"\0" * 8
    # WHEN verified THEN the verdict is the same; only the words in brackets are the library's
    verdict = check(archive, "mysql")
    words = {"zlib": "invalid block type", "isal": "invalid deflate block found"}[inflater]
    assert (verdict.code, verdict.detail) == ("gzip_corrupt", f"the gzip data is corrupt ({words})")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("after", ["zero padding", "another member"])
@pytest.mark.parametrize("chunk", [1 << 18, 1 << 23])
def test_a_member_whose_output_ends_on_a_full_piece_is_followed(after: str, chunk: int) -> None:
    # GIVEN a member of exactly 4 output pieces, then padding or a member in the same read (zlib then leaves what
    # follows in unconsumed_tail as well as in unused_data: a verifier that asks again never ends)
    info = tarfile.TarInfo("dump.sql")
    info.size = 4 * OUTPUT_PIECE - 2048
    tar = info.tobuf() + b"-- MySQL dump\n" + b"x" * (info.size - 14) + b"\0" * 1536  # exactly 4 pieces
    first = gzip.compress(tar, mtime=0)
    rest = b"\0" * 512 if after == "zero padding" else gzip.compress(b"\0" * 1024, mtime=0)
    # WHEN verified THEN it ends, and passes
    verdict = check(first + rest, "mysql", chunk=chunk)
    assert verdict.outcome is Outcome.OK, verdict
    assert verdict.unpacked == 4 * OUTPUT_PIECE + (0 if after == "zero padding" else 1024)


def test_thousands_of_members_in_one_piece_are_read_in_a_loop() -> None:
    # GIVEN 5,000 empty members, then the archive, all in one read (one call per member would overflow the stack)
    archive = gzip.compress(b"", mtime=0) * 5000 + good("mysql")
    verdict = check(archive, "mysql", chunk=len(archive))
    assert verdict.outcome is Outcome.OK, verdict
    assert "5001 members" in verdict.detail


def test_a_huffman_table_isal_accepts_is_caught_by_the_crc(inflater: str) -> None:
    # GIVEN one bit flipped in the first block's code lengths: zlib rejects the table (an incomplete code),
    # isal decodes with it, garbage the CRC then rejects
    archive = bytearray(good("mysql"))
    archive[22] ^= 1 << 5
    verdict = check(bytes(archive), "mysql")
    # THEN both fail the archive as gzip_corrupt, each naming what it found first
    assert (verdict.outcome, verdict.code) == (Outcome.FAILED, "gzip_corrupt")
    expected = {
        "zlib": "the gzip data is corrupt (invalid literal/lengths set)",
        "isal": "the gzip CRC check fails: the data is corrupt",
    }
    assert verdict.detail == expected[inflater]
