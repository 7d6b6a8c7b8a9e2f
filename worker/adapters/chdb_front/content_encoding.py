"""Request-body decoders for the HTTP `Content-Encoding`s clickhouse-connect sends (lz4, zstd,
gzip, deflate, br). Responses are never compressed, so there are no encoders."""

from __future__ import annotations

import contextlib
import zlib
from typing import Any

from worker.adapters.chdb_front.errors import CANNOT_DECOMPRESS, QueryFailure


class Decoder:
    """Incremental Content-Encoding decoder."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding.strip().lower()
        self._obj: Any = None
        enc = self.encoding
        if enc in ("", "identity"):
            return
        if enc == "lz4":
            import lz4.frame  # type: ignore[import-untyped,unused-ignore]

            self._obj = lz4.frame.LZ4FrameDecompressor()
        elif enc == "gzip":
            self._obj = zlib.decompressobj(wbits=31)
        elif enc == "deflate":
            self._obj = zlib.decompressobj()
        elif enc == "zstd":
            self._obj = _zstd_decompressor()
        elif enc == "br":
            import brotli  # type: ignore[import-not-found,unused-ignore]

            self._obj = brotli.Decompressor()
        else:
            raise QueryFailure(
                CANNOT_DECOMPRESS,
                f"Code: {CANNOT_DECOMPRESS}. DB::Exception: Unknown Content-Encoding "
                f"{encoding!r} (CANNOT_DECOMPRESS)",
            )

    def feed(self, data: bytes) -> bytes:
        if self._obj is None:
            return data
        try:
            if self.encoding == "br":
                return bytes(self._obj.process(data))
            return bytes(self._obj.decompress(data))
        except Exception as exc:
            raise QueryFailure(
                CANNOT_DECOMPRESS,
                f"Code: {CANNOT_DECOMPRESS}. DB::Exception: cannot decode the {self.encoding} "
                f"request body: {exc} (CANNOT_DECOMPRESS)",
            ) from exc

    def flush(self) -> bytes:
        if self._obj is not None and self.encoding in ("gzip", "deflate"):
            return bytes(self._obj.flush())
        return b""


def _zstd_decompressor() -> Any:
    for module in ("compression.zstd", "backports.zstd"):
        with contextlib.suppress(ImportError):
            mod = __import__(module, fromlist=["ZstdDecompressor"])
            return mod.ZstdDecompressor()
    try:
        import zstandard  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise QueryFailure(
            CANNOT_DECOMPRESS,
            f"Code: {CANNOT_DECOMPRESS}. DB::Exception: zstd request bodies need the "
            "zstandard or backports.zstd package (CANNOT_DECOMPRESS)",
        ) from exc
    return zstandard.ZstdDecompressor().decompressobj()
