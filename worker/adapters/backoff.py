"""Retrying a call to a provider's REST API (the importers' clients) through transient
failures: exponential backoff with jitter, six attempts, then the last failure is raised."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

T = TypeVar("T")


def with_backoff(call: Callable[[], T], transient: type[BaseException]) -> T:
    for attempt in Retrying(
        retry=retry_if_exception_type(transient),
        wait=wait_exponential_jitter(multiplier=0.5, max=15),
        stop=stop_after_attempt(6),
        reraise=True,
    ):
        with attempt:
            return call()
    raise AssertionError("unreachable")  # reraise=True ends the loop with an exception
