"""ringlog's native fast path (native/src/lib.rs); see worker/core/native_fast_path.py."""

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
        money_digits: int,
        time_min_us: int,
        time_max_us: int,
        /,
    ) -> None: ...
    def validate(self, data: dict[str, Any], /) -> Any:
        """The event model of `data`, or None where the pydantic validators must decide."""

def payload_digest(payload: bytes, /) -> int:
    """blake2b with an 8-byte digest of `payload`, as a big-endian int."""
