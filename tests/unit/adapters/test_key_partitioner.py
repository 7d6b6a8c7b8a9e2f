"""The dead-letter producer's partitioner places every record where aiokafka's default
partitioner (Kafka's murmur2, as the Java client) would."""

from __future__ import annotations

import os

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as python_murmur2
from hypothesis import given
from hypothesis import strategies as st

from worker.adapters.kafka import partitioner
from worker.adapters.kafka.partitioner import KeyPartitioner
from worker.core.native_fast_path import NATIVE_MISSING, NATIVE_MODULE


@given(st.binary(max_size=80), st.integers(1, 64))
def test_keyed_records_go_where_aiokafkas_default_puts_them(key: bytes, count: int) -> None:
    partitions = list(range(count))
    available = partitions[: max(1, count // 2)]  # availability never moves a keyed record
    expected = DefaultPartitioner()(key, partitions, available)
    assert KeyPartitioner()(key, partitions, available) == expected


@given(st.binary(max_size=200))
def test_murmur2_is_kafkas(data: bytes) -> None:
    assert partitioner.murmur2(data) == python_murmur2(data)


def test_murmur2_is_native_when_installed() -> None:
    if NATIVE_MODULE is None:  # pragma: no cover - depends on the installation
        if os.environ.get("CI"):
            pytest.fail(f"ringlog_native is not installed: {NATIVE_MISSING}", pytrace=False)
        pytest.skip(f"ringlog_native is not installed: {NATIVE_MISSING}")
    assert partitioner.murmur2 is NATIVE_MODULE.murmur2
    # Known values of the Java client's Utils.murmur2 (its tests): "21" -> -973932308.
    assert partitioner.murmur2(b"21") == -973932308 & 0xFFFFFFFF


def test_keyless_records_go_to_an_available_partition() -> None:
    placed = {KeyPartitioner()(None, [0, 1, 2, 3], [1, 3]) for _ in range(200)}
    assert placed == {1, 3}
