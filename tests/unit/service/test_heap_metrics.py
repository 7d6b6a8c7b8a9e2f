"""worker.service.heap_metrics: the live heap in /metrics, read at each scrape."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from worker.service.allocator import HeapUsage
from worker.service.heap_metrics import HeapCollector


def test_exposes_python_blocks_and_the_malloc_heap_as_read_at_the_scrape() -> None:
    reads = iter([100, 250])
    registry = CollectorRegistry()
    HeapCollector(
        registry,
        blocks=lambda: next(reads),
        usage=lambda: HeapUsage(in_use=3_000_000, free=40_000, mmapped=1_048_576),
    )
    first = generate_latest(registry).decode()
    assert "ringlog_python_allocated_blocks 100.0\n" in first
    assert 'ringlog_malloc_heap_bytes{state="in_use"} 3e+06\n' in first
    assert 'ringlog_malloc_heap_bytes{state="free"} 40000.0\n' in first
    assert 'ringlog_malloc_heap_bytes{state="mmapped"} 1.048576e+06\n' in first
    assert "ringlog_python_allocated_blocks 250.0\n" in generate_latest(registry).decode()


def test_without_glibc_only_the_python_blocks() -> None:
    registry = CollectorRegistry()
    HeapCollector(registry, blocks=lambda: 7, usage=lambda: None)
    text = generate_latest(registry).decode()
    assert "ringlog_python_allocated_blocks 7.0\n" in text
    assert "ringlog_malloc_heap_bytes" not in text


def test_python_blocks_follow_the_objects_alive() -> None:
    registry = CollectorRegistry()
    HeapCollector(registry)

    def blocks() -> float:
        value = registry.get_sample_value("ringlog_python_allocated_blocks")
        assert value is not None
        return value

    before = blocks()
    held = [object() for _ in range(100_000)]
    during = blocks()
    del held
    after = blocks()
    # 100k objects and their list, give or take the few the scrapes themselves leave
    assert during - before >= 99_000
    assert during - after >= 99_000
