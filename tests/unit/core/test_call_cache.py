"""The call cache (worker.core.call_state.CallCache): the count of open calls the open-calls
gauge reads must always be the number of cached calls whose state is open, whatever the cache
went through."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from worker.core.call_state import CallCache, CallKey, CallState

KEYS = [("p", f"c{n}") for n in range(6)]

_op = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(KEYS), st.integers(0, 2), st.booleans()),
    st.tuples(st.just("set_open"), st.sampled_from(KEYS), st.booleans()),
    st.tuples(st.just("get"), st.sampled_from(KEYS)),
    st.tuples(st.just("evict"), st.lists(st.sampled_from(KEYS), max_size=3)),
    st.tuples(st.just("drop"), st.sets(st.integers(0, 2), max_size=2)),
    st.tuples(st.just("clear")),
)


def _walk(cache: CallCache) -> list[CallKey]:
    return [key for key, state in cache.items() if state.open]


@given(st.integers(1, 5), st.lists(_op, max_size=40))
def test_the_open_count_is_the_open_cached_calls(max_calls: int, ops: list[tuple]) -> None:  # type: ignore[type-arg]
    cache = CallCache(max_calls)
    for op in ops:
        if op[0] == "put":
            cache.put(op[1], CallState(partition=op[2], open=op[3]))
        elif op[0] == "set_open":
            state = cache.peek(op[1])
            if state is not None:
                cache.set_open(state, op[2])
        elif op[0] == "get":
            cache.get(op[1])
        elif op[0] == "evict":
            cache.evict_overflow(keep=op[1])
        elif op[0] == "drop":
            cache.drop_partitions(op[1])
        else:
            cache.clear()
        assert cache.open_count() == len(_walk(cache))


def test_a_call_counts_once_however_often_it_opens() -> None:
    cache = CallCache(10)
    a, b, c = KEYS[:3]
    for key in (a, b, c):
        cache.put(key, CallState(partition=0))  # a new call is open until its rows say not
    state = cache.peek(a)
    assert state is not None
    cache.set_open(state, True)
    assert cache.open_count() == 3
    cache.set_open(state, False)
    cache.set_open(state, False)
    assert cache.open_count() == 2
    cache.put(b, CallState(partition=0, open=False))  # replaced by a closed state
    assert cache.open_count() == 1
    cache.put(b, CallState(partition=0, open=True))
    assert cache.open_count() == 2
