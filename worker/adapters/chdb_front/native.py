"""ClickHouse Native-format helpers: the zero-row header block ClickHouse sends for an empty
result (chDB emits no bytes for one)."""

from __future__ import annotations


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def native_header_block(meta: list[dict[str, str]]) -> bytes:
    """A zero-row Native block carrying only column names and types."""
    out = bytearray(_varint(len(meta)) + _varint(0))
    for column in meta:
        for text in (column["name"], column["type"]):
            raw = text.encode()
            out += _varint(len(raw)) + raw
    return bytes(out)
