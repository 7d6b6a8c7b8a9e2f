"""PortSIP's /api/calllogs read page by page in started_at order from a start time, retried
through 5xx, refused with a message naming the token setting; the resume point."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.support.fake_portsip import TOKEN, FakePortsip
from worker.adapters.portsip.calllogs import CalllogsClient, PortsipRefused
from worker.service.importer import ResumePoint

T0 = dt.datetime(2024, 8, 20, 6, 0, tzinfo=dt.UTC)


def records(n: int) -> list[dict[str, str]]:
    # two records share each started_at: the resume point must keep both ids
    return [
        {"id": f"{700000000000 + i}", "started_at": (T0 + dt.timedelta(seconds=i // 2)).isoformat()}
        for i in range(n)
    ]


def test_pages_in_order_from_a_start_time_through_5xx() -> None:
    fake = FakePortsip(records(250))
    fake.failures_left = 2
    with fake.serving() as url:
        client = CalllogsClient(url, TOKEN)
        try:
            pages = list(client.pages(T0 + dt.timedelta(seconds=10)))
        finally:
            client.close()
    assert [len(p) for p in pages] == [100, 100, 30]
    ids = [r["id"] for page in pages for r in page]
    assert ids == [r["id"] for r in records(250)][20:]
    assert fake.requests[-1]["filter"] == "started_at ge '2024-08-20T06:00:10.000Z'"
    assert fake.requests[-1]["orderby"] == "started_at asc, id asc"
    assert fake.requests[-1]["top"] == "100"


def test_a_bad_token_is_refused_naming_the_setting() -> None:
    with FakePortsip(records(3)).serving() as url:
        client = CalllogsClient(url, "wrong")
        with pytest.raises(PortsipRefused, match="RINGLOG_PORTSIP_API_TOKEN"):
            list(client.pages(T0))
        client.close()


def test_resume_point_keeps_the_ids_seen_at_the_last_time(tmp_path: Path) -> None:
    point = ResumePoint.load(tmp_path / "state" / "portsip.json")
    assert point.since is None and point.seen == set()
    point.advance(T0, "a")
    point.advance(T0 + dt.timedelta(seconds=1), "b")
    point.advance(T0 + dt.timedelta(seconds=1), "c")
    point.advance(T0, "late")  # older than the point: nothing changes
    point.save()
    again = ResumePoint.load(tmp_path / "state" / "portsip.json")
    assert (again.since, again.seen) == (T0 + dt.timedelta(seconds=1), {"b", "c"})
    assert not (tmp_path / "state" / "portsip.tmp").exists()
