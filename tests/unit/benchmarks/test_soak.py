"""Pure parts of benchmarks/soak.py's long-run mode: the flatness verdict and the tally of
what the generated traffic must turn into (no Kafka, no worker)."""

from __future__ import annotations

import dataclasses

import pytest

from benchmarks.ingest import expected_of
from benchmarks.soak import (
    LongResult,
    Sample,
    Tally,
    flatness,
    least_squares_slope,
    long_summary,
    rest_flatness,
    rest_points,
    running,
    tallied,
)
from devtools.traffic import generate_events


def sample(
    committed: int, floor_mib: float, hwm_mib: float | None = None, rss_mib: float | None = None
) -> Sample:
    floor = round(floor_mib * 1024)
    return Sample(
        seconds=committed / 10_000,
        produced=committed,
        committed=committed,
        rate=10_000.0,
        rss_kib=round(rss_mib * 1024) if rss_mib is not None else floor,
        floor_kib=floor,
        hwm_kib=round((hwm_mib if hwm_mib is not None else floor_mib) * 1024),
        cached_calls=None,
        open_calls=None,
    )


def test_least_squares_slope() -> None:
    assert least_squares_slope([(0, 1), (1, 3), (2, 5)]) == pytest.approx(2.0)
    assert least_squares_slope([(1, 1), (1, 2)]) is None  # x does not vary
    assert least_squares_slope([(0, 1)]) is None


def test_a_run_that_fills_then_stays_flat() -> None:
    # the cache fills over the first million messages, then VmRSS stays at 1,800 MiB
    rss = [500, 1_200, 1_800, 1_800, 1_801, 1_799, 1_800]
    samples = [sample(i * 1_000_000, mib) for i, mib in enumerate(rss)]
    flat = flatness(samples)
    assert flat is not None
    assert flat.split_committed == 3_000_000  # the first sample with >= half of 6M
    assert flat.first_events == 3_000_000 and flat.second_events == 3_000_000
    assert flat.first_growth_mib == pytest.approx(1_300)
    assert flat.second_growth_mib == pytest.approx(0)
    assert flat.second_samples == 4
    assert flat.second_slope_mib_per_million is not None
    assert abs(flat.second_slope_mib_per_million) < 0.5
    assert flat.judged_mib_per_million == flat.second_slope_mib_per_million


def test_a_leak_shows_in_the_second_half() -> None:
    # 10 MiB more per million messages all along
    samples = [sample(i * 500_000, 1_000 + 5 * i, hwm_mib=1_100 + 5 * i) for i in range(9)]
    flat = flatness(samples)
    assert flat is not None
    assert flat.second_mib_per_million == pytest.approx(10, abs=0.01)
    assert flat.second_slope_mib_per_million == pytest.approx(10, abs=0.01)
    assert flat.second_hwm_growth_mib == pytest.approx(20, abs=0.01)


def test_transient_peaks_do_not_count() -> None:
    # VmRSS read at the line jumps by 200 MiB at two lines of the second half (a merge), but
    # it came back to 1,800 MiB within those intervals
    rss = [500, 1_800, 1_800, 1_800, 2_000, 1_800, 2_000]
    samples = [sample(i * 1_000_000, 1_800 if i else 500, rss_mib=r) for i, r in enumerate(rss)]
    flat = flatness(samples)
    assert flat is not None
    assert flat.second_growth_mib == 0 and flat.judged_mib_per_million == pytest.approx(0)


def test_too_few_samples_give_no_verdict() -> None:
    assert flatness([sample(0, 500), sample(1_000, 600)]) is None


def test_two_lines_in_the_second_half_are_judged_by_their_ends() -> None:
    flat = flatness([sample(0, 500), sample(100, 700), sample(200, 710)])
    assert flat is not None
    assert flat.second_slope_mib_per_million is None
    assert flat.judged_mib_per_million == pytest.approx(10 / 100 * 1e6)


def test_the_tally_counts_as_the_ingest_benchmark_does() -> None:
    messages = list(generate_events(3_000, seed=5, invalid_share=0.02, oversized=0))
    tally = Tally()
    assert list(tallied(iter(messages), tally)) == messages  # passed on untouched
    assert tally.expected() == expected_of(messages)
    assert tally.expected().duplicates > 0 and tally.expected().invalid > 0


def rest(committed: int, rss_mib: float, blocks: int = 1_000_000) -> Sample:
    return dataclasses.replace(
        sample(committed, rss_mib),
        at_rest=True,
        python_blocks=blocks,
        malloc_in_use=70 << 20,
        malloc_free=1 << 20,
    )


def test_rest_points_are_judged_apart_from_the_lines_taken_while_running() -> None:
    # while running the floor climbs with each backlog (400 -> 460 MiB); at rest the worker
    # is back at 300 MiB each time after the call cache has filled
    samples = [
        sample(0, 100),
        sample(1_000_000, 400),
        rest(2_000_000, 300),
        sample(3_000_000, 420),
        rest(4_000_000, 301),
        sample(5_000_000, 440),
        rest(6_000_000, 300),
        sample(7_000_000, 460),
        rest(8_000_000, 300),
    ]
    assert [s.committed for s in rest_points(samples)] == [0, 2e6, 4e6, 6e6, 8e6]
    assert [s.committed for s in running(samples)] == [0, 1e6, 3e6, 5e6, 7e6]
    at_rest = rest_flatness(samples)
    assert at_rest is not None
    assert at_rest.start_rss_mib == 100 and at_rest.end_rss_mib == 300
    assert at_rest.split_committed == 4_000_000
    assert at_rest.second_slope_mib_per_million == pytest.approx(-0.25)
    floor = flatness(running(samples))
    assert floor is not None and floor.judged_mib_per_million == pytest.approx(10)

    result = long_result(samples, rest_every=2_000_000)
    result.rest, result.flat = at_rest, floor
    result.check()
    assert result.checks["RSS at rest flat (second half <= 1 MiB per million events)"]
    # without rest points the floor is judged
    result.rest_every = 0
    result.check()
    assert not result.checks["RSS flat (second half <= 1 MiB per million events)"]


def test_a_leak_shows_at_rest_too() -> None:
    samples = [sample(0, 100)] + [rest(i * 1_000_000, 300 + 5 * i) for i in range(1, 9)]
    at_rest = rest_flatness(samples)
    assert at_rest is not None
    assert at_rest.judged_mib_per_million == pytest.approx(5)
    result = long_result(samples, rest_every=1_000_000)
    result.rest = at_rest
    result.check()
    assert not result.checks["RSS at rest flat (second half <= 1 MiB per million events)"]
    assert "RSS at rest" in long_summary(result) and "NOT flat" in long_summary(result)


def long_result(samples: list[Sample], rest_every: int) -> LongResult:
    return LongResult(
        command="python -m benchmarks.soak --events 8000000",
        topic="t",
        work_dir="/tmp/x",
        events_requested=8_000_000,
        rss_every=60,
        rate=None,
        worker_env={},
        max_growth=1.0,
        rest_every=rest_every,
        samples=samples,
    )
