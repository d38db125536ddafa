"""The real fixtures and their corrupt variants downloaded over loopback HTTP with each deflate library (isal, zlib):
the same verdicts, and the log line names the library used."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests

from backup_monitor.archives import Verdict, download_and_verify, inflate
from backup_monitor.config import Target
from backup_monitor.scalingo.client import ScalingoClient, build_session
from tests.conftest import NOW, settings_for
from tests.fakes import FakeScalingo
from tests.support.archives import GOOD, good, variants

CASES = [(name, "good") for name in sorted(GOOD)] + [(name, v) for name in sorted(GOOD) for v in variants(name)]


@pytest.fixture
def session() -> Iterator[requests.Session]:
    http = build_session(retries=1, backoff_factor=0.01)
    yield http
    http.close()


def download(fake: FakeScalingo, session: requests.Session, name: str, data: bytes, listed: int | None) -> Verdict:
    """Serve `data` as the newest backup of a database of fixture `name`'s type, then download and verify it."""
    fake.add_database("shop", "ad-1", provider=GOOD[name])
    backup = fake.add_backup("ad-1", NOW - timedelta(hours=8), size=listed)
    fake.set_archive(backup["id"], lambda: iter([data]))  # no Content-Length: only the bytes themselves tell
    client = ScalingoClient.from_settings(settings_for(fake))
    link = client.archive_link(Target("osc-fr1", "shop", "ad-1"), backup["id"])
    return download_and_verify(
        session, link, type_name=GOOD[name], listed_size=listed, max_bytes=10**9, time_limit=30.0, read_timeout=5.0
    )


@pytest.mark.parametrize(("name", "variant"), CASES, ids=[f"{n}-{v}" for n, v in CASES])
def test_isal_and_zlib_give_the_same_verdict_through_the_download_link(
    fake_scalingo: FakeScalingo,
    session: requests.Session,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    name: str,
    variant: str,
) -> None:
    listed: int | None
    if variant == "good":
        data, listed = good(name), len(good(name))
    else:
        case = variants(name)[variant]
        data, listed = case.data, case.listed_size
    verdicts = {}
    for inflater in ("isal", "zlib"):
        # GIVEN the verifier set to one library
        monkeypatch.setattr(inflate, "INFLATER", inflater)
        caplog.clear()
        # WHEN the archive is downloaded and verified
        with caplog.at_level(logging.INFO, logger="backup_monitor.archives.download"):
            verdict = download(fake_scalingo, session, name, data, listed)
        # (not the bytes received: a failure in the first read counts what that read returned, the network's choice)
        verdicts[inflater] = (verdict.outcome, verdict.code, verdict.detail)
        # THEN the log line says which library inflated it
        logged = [r.__dict__["inflater"] for r in caplog.records if r.getMessage() == "archive verification finished"]
        assert logged == [inflater]
    assert verdicts["isal"] == verdicts["zlib"]
    if variant != "good":
        assert verdicts["zlib"][1] == variants(name)[variant].code
