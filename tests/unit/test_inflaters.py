"""Which deflate library the verifier uses, and that isal and zlib give the same verdicts on damaged archives."""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator

import pytest

from backup_monitor.archives import Verdict, inflate, verify_chunks
from backup_monitor.archives.container import CRC_FAILS
from tests.support.archives import GOOD, good, variants

CORRUPT_DEFLATE = "the gzip data is corrupt ("  # then the library's own words for what it found


def test_isal_is_the_inflater_when_it_imports() -> None:
    assert list(inflate.BACKENDS) == ["isal", "zlib"]
    assert inflate.INFLATER == "isal"
    assert inflate.backend().name == "isal"


def test_without_isal_zlib_is_the_inflater(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "isal", None)  # `import isal` now raises ImportError
    assert list(inflate.available_backends()) == ["zlib"]


def test_isals_error_is_not_zlibs_yet_both_are_caught() -> None:
    # GIVEN a raw deflate stream with the reserved block type: each library raises its own exception class
    for backend in inflate.BACKENDS.values():
        with pytest.raises(backend.error) as caught:
            backend.inflater().decompress(b"\x07\x00\x00")
        assert backend.describe(caught.value).startswith("invalid ")
    assert not issubclass(inflate.BACKENDS["isal"].error, inflate.BACKENDS["zlib"].error)


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


def verdict_with(
    monkeypatch: pytest.MonkeyPatch, name: str, data: bytes, type_name: str, listed: int | None, chunk: int
) -> Verdict:
    monkeypatch.setattr(inflate, "INFLATER", name)
    return verify_chunks(pieces(data, chunk), type_name=type_name, listed_size=listed, max_bytes=10**9, deadline=1e18)


def damaged(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    where = rng.randrange(len(out))
    kind = rng.choice(["flip", "byte", "cut", "insert"])
    if kind == "flip":
        out[where] ^= 1 << rng.randrange(8)
    elif kind == "byte":
        out[where] = rng.randrange(256)
    elif kind == "cut":
        del out[where:]
    else:
        out[where:where] = rng.randbytes(rng.randrange(1, 5))
    return bytes(out)


@pytest.mark.parametrize("name", sorted(GOOD))
def test_isal_and_zlib_give_the_same_verdicts_on_damaged_archives(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the fixture, its corrupt variants and 60 randomly damaged copies (a fixed seed), in pieces of 3 bytes
    # to 256 KiB
    rng = random.Random(name)
    data, type_name = good(name), GOOD[name]
    cases = [(data, len(data))] + [(v.data, v.listed_size) for v in variants(name).values()]
    cases += [(damaged(rng, data), rng.choice([None, len(data)])) for _ in range(60)]
    for archive, listed in cases:
        chunk = rng.choice([3, 511, 4096, 1 << 18])
        # WHEN each is verified with isal and with zlib
        by_isal = verdict_with(monkeypatch, "isal", archive, type_name, listed, chunk)
        by_zlib = verdict_with(monkeypatch, "zlib", archive, type_name, listed, chunk)
        # THEN the outcome and code are the same, and so is the detail, except for a damaged deflate stream: each
        # library names it in its own words, and a Huffman table zlib rejects, isal may decode (the CRC then fails)
        assert (by_isal.outcome, by_isal.code) == (by_zlib.outcome, by_zlib.code), (by_isal, by_zlib)
        if by_zlib.detail.startswith(CORRUPT_DEFLATE):
            assert by_isal.detail.startswith((CORRUPT_DEFLATE, CRC_FAILS)), (by_isal, by_zlib)
        else:
            assert (by_isal.detail, by_isal.received) == (by_zlib.detail, by_zlib.received), (by_isal, by_zlib)
