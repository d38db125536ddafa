"""The deflate decoder behind the gzip check: python-isal's when installed (about 2.7 times zlib's speed per
CPU-second), the standard library's zlib otherwise. `INFLATER` names the one in use.

Only raw deflate and CRC-32 are taken from it. The gzip framing (header, CRC-32 and length of each member) is
read by `container.Gunzip` the same way whatever the decoder, so both give the same verdicts: isal's own gzip
mode reports a bad CRC, a bad length and a bad header CRC alike, accepts reserved header flags, and rejects a
valid header CRC when the header arrives in more than one piece.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

RAW_DEFLATE = -zlib.MAX_WBITS  # no zlib or gzip wrapper, a 32 KiB window (all that deflate allows)


class RawInflater(Protocol):
    """What both `zlib.decompressobj` and `isal_zlib.decompressobj` return, as far as Gunzip uses it."""

    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    @property
    def unconsumed_tail(self) -> bytes: ...

    def decompress(self, data: bytes, max_length: int = 0, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Backend:
    """One deflate library: a raw inflater, its CRC-32, the exception it raises and how to say it to people."""

    name: str
    inflater: Callable[[], RawInflater]
    crc32: Callable[[bytes, int], int]
    error: type[Exception]
    describe: Callable[[Exception], str]


def _describe_zlib(exc: Exception) -> str:
    text = str(exc)  # "Error -3 while decompressing data: invalid code lengths set"
    return text.partition(": ")[2] or text


_ISAL_CODE = re.compile(r"^Error -?\d+ ")


def _describe_isal(exc: Exception) -> str:
    text = _ISAL_CODE.sub("", str(exc))  # "Error -1 Invalid deflate block found"
    return text[:1].lower() + text[1:]


def _zlib() -> Backend:
    return Backend("zlib", lambda: zlib.decompressobj(RAW_DEFLATE), zlib.crc32, zlib.error, _describe_zlib)


def _isal() -> Backend | None:
    try:
        from isal import isal_zlib
    except ImportError:
        return None
    error = cast("type[Exception]", isal_zlib.error)  # its stub types the class as an instance
    return Backend("isal", lambda: isal_zlib.decompressobj(RAW_DEFLATE), isal_zlib.crc32, error, _describe_isal)


def available_backends() -> dict[str, Backend]:
    """The deflate libraries that import here, fastest first: isal (if installed), then zlib."""
    return {b.name: b for b in (_isal(), _zlib()) if b is not None}


BACKENDS = available_backends()
INFLATER: str = next(iter(BACKENDS))  # "isal" when importable, else "zlib"; tests and the bench set it to compare


def backend() -> Backend:
    """The deflate library new Gunzip streams use (`INFLATER`)."""
    return BACKENDS[INFLATER]
