"""Wide probes against the simulator's truth: same lake, fewer requests, exact re-syncs."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from esms_analytics import read_lake
from esms_analytics.client import RetryPolicy, Window
from esms_analytics.manifest import Manifest
from esms_analytics.simulator import Faults, Simulator
from esms_analytics.simulator.history import VIETNAM
from esms_analytics.sync import sync

NOW = datetime(2026, 6, 30, 12, 0)
BUSY = (2, 25)


def counts(sms_type: int, day: date) -> int:
    """Two busy types with a few quiet days; type 8 used on one day; the rest unused."""
    if sms_type in BUSY:
        return 0 if day.toordinal() % 9 == 0 else 3 + day.day % 4
    if sms_type == 8:
        return 2 if day == date(2026, 3, 14) else 0
    return 0


def facts(lake: Path) -> dict[tuple[int, date], tuple[int, int, bool]]:
    return {
        (entry.sms_type, entry.date): (entry.rows, entry.count_total, entry.settled)
        for entry in Manifest(lake).entries.values()
    }


def rows(lake: Path) -> pl.DataFrame:
    return read_lake(lake).collect().sort("sms_type", "sent_at", "sms_id", "reference_id")


def test_a_probed_sync_stores_what_a_day_by_day_sync_stores_with_fewer_requests(
    tmp_path: Path,
) -> None:
    with Simulator(now=NOW, days=200, counts=counts) as sim, sim.client() as client:
        probed = sync(tmp_path / "p", "2026-01-01", NOW.date(), client=client, progress=False)
        probed_requests = len(sim.requests)
        sim.reset_requests()
        daily = sync(
            tmp_path / "d", "2026-01-01", NOW.date(), client=client, progress=False, probes=False
        )
        daily_requests = len(sim.requests)
    assert probed.complete
    assert daily.complete
    assert probed.requests == probed_requests
    assert daily.requests == daily_requests
    assert rows(tmp_path / "p").equals(rows(tmp_path / "d"))
    assert facts(tmp_path / "p") == facts(tmp_path / "d")
    assert len(facts(tmp_path / "p")) == 181 * 7  # every empty day recorded
    busy_alone = 2 * 181
    assert probed_requests <= 1.1 * busy_alone + 2 * 5 * 6 + 2 * 6
    assert daily_requests == 181 * 7


def test_a_refused_range_falls_back_to_days_once(tmp_path: Path, caplog: object) -> None:
    faults = Faults(max_span_days=1)
    with Simulator(now=NOW, days=60, counts=counts, faults=faults) as sim, sim.client() as client:
        report = sync(tmp_path / "p", "2026-05-01", NOW.date(), client=client, progress=False)
        truth = sync(
            tmp_path / "d", "2026-05-01", NOW.date(), client=client, progress=False, probes=False
        )
    assert report.complete
    assert truth.complete
    assert facts(tmp_path / "p") == facts(tmp_path / "d")
    assert rows(tmp_path / "p").equals(rows(tmp_path / "d"))
    assert report.requests <= 61 * 7 + 4  # at most a probe per worker under way


def test_a_day_found_empty_then_filled_is_fetched_again_while_unsettled(tmp_path: Path) -> None:
    with Simulator(now=NOW, days=60, counts=counts) as sim, sim.client() as client:
        first = sync(
            tmp_path / "p", "2026-06-20", NOW.date(), client=client, progress=False, now=NOW
        )
        assert first.complete
        assert facts(tmp_path / "p")[(26, NOW.date())] == (0, 0, False)
        sim.history.add_arrivals(26, sim.clock.now_ms(), 3)
        sim.clock.advance(timedelta(minutes=5))
        again = sync(
            tmp_path / "p", "2026-06-20", NOW.date(), client=client, progress=False, now=NOW
        )
    assert again.complete
    assert facts(tmp_path / "p")[(26, NOW.date())][:2] == (3, 3)


def test_rows_arriving_and_faults_while_probing_are_not_lost(tmp_path: Path) -> None:
    faults = Faults(arrivals_per_request=1, arrival_requests=40, seed=3)
    faults.set_rate("http503", 0.1)
    retry = RetryPolicy(backoff_initial=0.001, backoff_max=0.01)
    with (
        Simulator(now=NOW, days=60, counts=counts, faults=faults) as sim,
        sim.client(retry=retry) as client,
    ):
        sync(tmp_path / "p", "2026-06-01", NOW.date(), client=client, progress=False, now=NOW)
        faults.arrivals_per_request = 0
        faults.rates.clear()
        sim.clock.advance(timedelta(minutes=1))
        sync(tmp_path / "p", "2026-06-01", NOW.date(), client=client, progress=False, now=NOW)
        stored = facts(tmp_path / "p")
        for sms_type in (1, 2, 8, 23, 24, 25, 26):
            page = client.get_page(Window.for_day(NOW.date()), sms_type, 1, 1)
            assert stored[(sms_type, NOW.date())][:2] == (page.count_total, page.count_total)


def test_a_nightly_sync_asks_no_more_than_day_by_day(tmp_path: Path) -> None:
    asked = {}
    for probes in (True, False):
        with Simulator(now=NOW, days=60, counts=counts) as sim, sim.client() as client:
            lake = tmp_path / str(probes)
            sync(lake, "2026-06-01", NOW.date(), client=client, progress=False, now=NOW)
            night = (NOW + timedelta(days=1)).replace(tzinfo=VIETNAM)
            sim.clock.set(night)
            sim.reset_requests()
            sync(
                lake,
                night.date() - timedelta(days=9),
                night.date(),
                client=client,
                progress=False,
                now=night,
                probes=probes,
            )
            asked[probes] = len(sim.requests)
    # The 2 busy types ask their unsettled days as before; the 5 others one range each.
    assert asked[True] < asked[False], asked


def test_the_simulator_answers_a_range_as_its_days_newest_first() -> None:
    with Simulator(now=NOW, days=30, counts=counts) as sim, sim.client() as client:
        first, last = date(2026, 6, 10), date(2026, 6, 16)
        window = Window(Window.for_day(first).start, Window.for_day(last).end)
        ranged = [row for page in client.iter_pages(window, 2, page_size=7) for row in page.rows]
        days = [
            row
            for offset in range(6, -1, -1)
            for page in client.iter_pages(Window.for_day(first + timedelta(offset)), 2)
            for row in page.rows
        ]
        count = client.get_page(window, 2, 1, 1).count_total
    assert count == sum(counts(2, first + timedelta(d)) for d in range(7)) == len(days)
    assert ranged == days


def test_refused_credentials_end_the_probes_at_once(tmp_path: Path) -> None:
    """A fatal answer awaits every probe: the ones still queued are not sent."""
    import pytest

    from esms_analytics import AuthError, EsmsClient

    with Simulator(now=NOW, days=200, counts=counts) as sim:
        with (
            EsmsClient(sim.api_key, "not-the-secret", base_url=sim.base_url) as client,
            pytest.raises(AuthError),
        ):
            sync(tmp_path / "lake", "2026-01-01", NOW.date(), client=client, progress=False)
        # 6 months x 7 types = 42 probes planned; at most one a worker was under way.
        assert 1 <= len(sim.requests) <= 4
    assert not (tmp_path / "lake" / "sms").exists()
