"""Where the store lives: the store URL parsed and validated into a `StoreTarget`.

Two kinds of URL: a ClickHouse server, `http(s)://user:password@host:8123[/db][?options]`, or
embedded chDB, `chdb:///abs/path`, `chdb://./relative/path` or `chdb://memory`. Also here:
`redact_url` (messages and logs never contain a password) and the check whether another
process holds a chDB data path's lock (chDB: one process per data path, "Cannot lock file").
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from worker.pipeline.ports import StoreError

__all__ = ["StoreTarget", "parse_url", "path_locked_by_other_process", "redact_url"]

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@")
_SECRET_PARAM = re.compile(r"(?i)\b(password|passwd|access_token)=[^&\s]*")


def redact_url(url: str) -> str:
    """`http://user:pass@host:8123/db` -> `http://user:***@host:8123/db` (also `password=`)."""
    masked = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", url)
    return _SECRET_PARAM.sub(lambda m: f"{m.group(1)}=***", masked)


@dataclass(frozen=True)
class StoreTarget:
    kind: str  # "chdb" or "http"
    dsn: str  # what clickhouse_connect.get_client(dsn=...) gets
    display: str  # redacted, for messages and logs
    path: Path | None  # chDB data directory (None = in memory)
    interface: str | None  # "http" / "https"
    password: str  # to scrub from any message


def parse_url(url: str) -> StoreTarget:
    """The target of a store URL; StoreError for anything but http(s):// or chdb:."""
    if url.startswith("chdb:"):
        rest = url[len("chdb:") :]
        rest = rest.removeprefix("//")
        location, _, query = rest.partition("?")
        if location in ("", "memory", ":memory:"):
            return StoreTarget("chdb", "chdb://memory", "chdb://memory", None, None, "")
        # chdb:///abs/path -> "/abs/path"; chdb://./var/clickhouse -> "./var/clickhouse"
        path = Path(location).expanduser().resolve()
        dsn = f"chdb://{path}" + (f"?{query}" if query else "")
        return StoreTarget("chdb", dsn, redact_url(dsn), path, None, "")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StoreError(
            f"unsupported ClickHouse URL {redact_url(url)!r}: "
            "use http(s)://user:password@host:8123/db or chdb:///abs/path"
        )
    # The database comes from the `database` argument (it may not exist before migrate()),
    # so the URL's path is dropped; the query string (client options) is kept.
    query = urlencode(parse_qsl(parts.query))
    dsn = urlunsplit((parts.scheme, parts.netloc, "", query, ""))
    return StoreTarget("http", dsn, redact_url(dsn), None, parts.scheme, parts.password or "")


def path_locked_by_other_process(path: Path) -> bool:
    """True when another process holds ClickHouse's lock on `<path>/status`."""
    status = path / "status"
    if not status.exists():
        return False
    try:
        fd = os.open(status, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
