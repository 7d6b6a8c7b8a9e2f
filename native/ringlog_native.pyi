"""ringlog's native fast path (native/src/lib.rs); see worker/core/native_fast_path.py."""

from collections.abc import Callable, Iterable
from typing import Any, Final

FieldSpec = tuple[str, int, bool, object, tuple[object, ...]]

KINDS: Final[tuple[tuple[str, int], ...]]
"""The field kinds EventValidator knows, by name: what `models` gives as each field's kind."""

class EventValidator:
    def __init__(
        self,
        models: dict[str, tuple[type[Any], list[FieldSpec], list[int]]],
        decimal: type[Any],
        utc: Any,
        loads: Any,
        valid_event: type[Any],
        money_digits: int,
        time_min_us: int,
        time_max_us: int,
        /,
    ) -> None: ...
    def validate(self, data: dict[str, Any], /) -> Any:
        """The event model of `data`, or None where the pydantic validators must decide."""
    def decode(self, value: bytes, key: bytes | None, /) -> Any:
        """The ValidEvent of a message's bytes and key, or None where the decoder must decide."""
    def decode_record(
        self, value: bytes, key: bytes | None, topic: str, partition: int, offset: int, /
    ) -> Any:
        """`decode` of a consumed record and its call_event row in RowBinary (every column
        but ingested_at; None if only Python can write it): (ValidEvent, row | None), or None."""
    def decode_batch(
        self,
        records: Iterable[Any],
        fallback: Callable[[bytes | None, bytes], Any],
        projects: dict[str, str],
        pool_max: int,
        /,
    ) -> tuple[dict[tuple[str, str], list[Any]], list[Any]] | None:
        """`BatchPlanner.decode`'s loop: each distinct (key, value) decoded once (by
        `decode_record`, else `fallback(key, value)`), valid events grouped by (project_id
        shared from `projects`, call_id) as (record, ValidEvent, row) in arrival order, and
        (record, rejection) pairs. None if a key or value is neither bytes nor None."""
    def pack_with(self, packer: EventPacker, /) -> None:
        """From now on each decoded event of a model `packer` packs carries the bytes it
        would write for it (`ValidEvent.packed`). Once per validator."""

def payload_digest(payload: bytes, /) -> int:
    """blake2b with an 8-byte digest of `payload`, as a big-endian int."""

def merge_items(
    events: dict[str, Any],
    items: list[Any],
    new_rows: list[Any],
    written: list[str],
    duplicate: list[str],
    times: list[Any],
    /,
) -> bool:
    """`CallState.merge_items`' loop: each (record, ValidEvent, row) of `items` merged into
    `events` by event_id (the larger digest kept), counted in the lists; True if `events`
    changed."""

def murmur2(data: bytes, /) -> int:
    """Kafka's murmur2 of `data` (the Java client's, the default partitioner's), unsigned."""

PACK_TAG: Final[int]
"""The first byte of a call EventPacker packed (never marshal's first byte)."""

PackFieldSpec = tuple[str, int, tuple[object, ...]]

class EventPacker:
    def __init__(
        self,
        models: list[tuple[type[Any], list[PackFieldSpec], int, int, int]],
        valid_event: type[Any],
        decimal: type[Any],
        utc: Any,
        sources: dict[str, str],
        pool_max: int,
        /,
    ) -> None: ...
    def pack(self, events: dict[str, Any], /) -> bytes | None:
        """The events as bytes, or None if one of them cannot be packed exactly."""
    def unpack(self, packed: bytes, key: tuple[str, str], /) -> dict[str, Any]:
        """The events `pack` was given, by event_id; `key` is (project_id, call_id)."""

class RowBuilder:
    def __init__(
        self,
        classes: dict[type[Any], str],
        valid_event: type[Any],
        rate: Any,
        round_cents: Any,
        zero: Any,
        namespace: bytes,
        timeout_message: str,
        item_end_status: dict[str, str],
        call_end_status: dict[str, str],
        cdr_direction: dict[str, Any],
        never: Any,
        dumps: Any,
        utc: Any,
        /,
    ) -> None: ...
    def rows(
        self, distinct: Any, rates: Any, now: Any = None, timeout: Any = None, /
    ) -> tuple[list[Any], list[Any], list[Any], list[Any], bool, Any] | None:
        """rows_of_distinct's CallRows fields in order, or None where Python must answer."""

class RowBinaryEncoder:
    def __init__(self, columns: list[tuple[str, str]], /) -> None:
        """`columns`: (name, ClickHouse type) of a table, in its order; ValueError names a
        type the encoder does not write."""
    def encode(self, rows: Any, /) -> bytes | None:
        """The dict rows in RowBinary, or None where the JSON path must encode them (a value
        the encoder cannot be sure to store as the JSON body would)."""

class NativeBlockWriter:
    def __init__(self, columns: list[tuple[str, str]], /) -> None:
        """`columns`: (name, ClickHouse type) in the order of the rows' values; ValueError
        names a type whose layout is not one of `RowBinaryEncoder`'s."""
    def block(self, body: bytes, rows: int, /) -> bytes:
        """`body`, the RowBinary of `rows` rows of the columns, as one block of ClickHouse's
        Native format (LowCardinality columns declared as their plain type); ValueError names
        the row and column where `body` is not such rows."""
    def block_of_rows(self, rows: list[bytes], suffix: bytes, /) -> bytes:
        """`block` of the body that is each of `rows` followed by `suffix` (the values of the
        last columns, the same for every row), joined in a buffer the writer keeps."""
