"""`python -m benchmarks.ingest` refuses counts, timeouts and rates that are not above 0
before it touches Kafka (a negative --events once produced an empty topic and ran every
contender on it)."""

from __future__ import annotations

import pytest

from benchmarks.ingest import _parser


@pytest.mark.parametrize(
    ("flag", "value", "why"),
    [
        ("--events", "-1", "'-1': must be above 0"),
        ("--events", "0", "'0': must be above 0"),
        ("--events", "x", "'x' is not a number"),
        ("--partitions", "0", "'0': must be above 0"),
        ("--batch-max-events", "-5", "'-5': must be above 0"),
        ("--rate", "0", "'0': must be above 0"),
        ("--faust-timeout", "-1", "'-1': must be above 0"),
        ("--quix-timeout", "nan", "'nan': must be above 0"),
    ],
)
def test_a_value_not_above_zero_is_refused(
    flag: str, value: str, why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        _parser().parse_args([flag, value])
    assert exited.value.code == 2
    assert f"argument {flag}: {why}" in capsys.readouterr().err


def test_valid_values_are_read() -> None:
    args = _parser().parse_args(["--events", "10", "--rate", "2.5", "--partitions", "3"])
    assert (args.events, args.rate, args.partitions) == (10, 2.5, 3)
