"""Streaming verification of backup archives: gzip over tar, one dump inside, never on disk, never whole.

`verify_chunks` checks bytes as they arrive (gzip CRC and length, the tar structure, the dump's format);
`download_and_verify` feeds it from an HTTP download. Both return a `Verdict`: ok, failed (the archive is
damaged, and the detail says how) or not run (the download was refused, too big, or out of time).
"""

from backup_monitor.archives.download import download_and_verify
from backup_monitor.archives.stream import verify_chunks
from backup_monitor.archives.verdict import Outcome, Verdict

__all__ = ["Outcome", "Verdict", "download_and_verify", "verify_chunks"]
