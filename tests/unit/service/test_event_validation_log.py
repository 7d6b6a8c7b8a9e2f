"""The worker says at start which event validator runs: the native one is about twice as fast,
so an installation without it should be told, with how to get it."""

from __future__ import annotations

import logging

import pytest

from worker.service import lifecycle


def _logged(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    lifecycle._log_event_validation()
    return [(r.levelno, r.getMessage()) for r in caplog.records]


def test_native_validation_is_logged(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger=lifecycle.log.name)
    monkeypatch.setattr(lifecycle, "VALIDATOR", object())
    monkeypatch.setattr(lifecycle, "NOT_NATIVE", {})
    assert _logged(caplog) == [(logging.INFO, "event validation: native (ringlog_native)")]


def test_a_missing_extension_is_a_warning_that_says_how_to_build_it(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lifecycle, "VALIDATOR", None)
    monkeypatch.setattr(lifecycle, "NATIVE_MISSING", "No module named 'ringlog_native'")
    assert _logged(caplog) == [
        (
            logging.WARNING,
            "event validation: pure Python, ringlog_native is not installed (No module named "
            "'ringlog_native'); `pip install ./native` (needs Rust) builds the faster native "
            "fast path",
        )
    ]


def test_event_types_left_to_pydantic_are_named(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lifecycle, "VALIDATOR", object())
    monkeypatch.setattr(lifecycle, "NOT_NATIVE", {"cdr.recorded": "ratio: float"})
    assert _logged(caplog) == [
        (
            logging.WARNING,
            "event validation: native, except (left to pydantic): {'cdr.recorded': 'ratio: float'}",
        )
    ]
