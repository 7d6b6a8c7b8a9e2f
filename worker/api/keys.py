"""API keys: what a key is, how it is made and stored, and how a request's key is found.

A key is bound to one project with a role and/or read permissions (DESIGN.md section 6),
may expire, and can be revoked. Only its SHA-256 is stored (the key is 122 random bits, so a
slow hash adds nothing), in the `api_key` table that every API replica reads; the key itself
is shown once, at creation. A key is a UUID because OneUptime's clients send one.

Lookups are cached for `CACHE_SECONDS`, so a revocation reaches every replica within that.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Protocol

from cachetools import TTLCache

from schemas.tables import API_KEY

CACHE_SECONDS: Final = 10.0
CACHE_SIZE: Final = 10_000


class Role(StrEnum):
    OWNER = "ProjectOwner"
    ADMIN = "ProjectAdmin"
    MEMBER = "ProjectMember"
    VIEWER = "Viewer"


class Permission(StrEnum):
    READ_INCOMING_CALL_LOG = "ReadIncomingCallLog"
    READ_INCOMING_CALL_LOG_ITEM = "ReadIncomingCallLogItem"
    READ_CALL_LOG = "ReadCallLog"
    READ_CDR = "ReadCdr"


@dataclass(frozen=True)
class ApiKey:
    id: str
    project_id: str
    name: str
    role: Role | None
    permissions: tuple[Permission, ...]
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None

    def usable(self, now: dt.datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def public(self) -> dict[str, object]:
        """What `ringlog apikey list` shows: everything but the secret (never stored)."""
        return {
            "id": self.id,
            "project_id": self.project_id,
            "name": self.name,
            "role": self.role.value if self.role else None,
            "permissions": [p.value for p in self.permissions],
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.strip().lower().encode("utf-8")).hexdigest()


def new_secret() -> str:
    return str(uuid.uuid4())


class KeyTable(Protocol):
    """The store operations the registry needs (ClickHouseStore has them)."""

    def query(
        self, sql: str, parameters: dict[str, object] | None = None
    ) -> tuple[list[str], list[tuple[object, ...]]]: ...

    def insert(self, table: str, rows: Sequence[Mapping[str, object]]) -> None: ...

    @property
    def database(self) -> str: ...


_COLUMNS: Final = (
    "id",
    "project_id",
    "name",
    "role",
    "permissions",
    "created_at",
    "expires_at",
    "revoked_at",
)


class KeyRegistry:
    """Creates, lists, revokes and finds API keys in the `api_key` table."""

    def __init__(self, table: KeyTable, now: type[dt.datetime] = dt.datetime) -> None:
        self._table = table
        self._now = now
        self._cache: TTLCache[str, ApiKey | None] = TTLCache(CACHE_SIZE, CACHE_SECONDS)
        self._lock = threading.Lock()

    def _select(self) -> str:
        listed = ", ".join(f"`{c}`" for c in _COLUMNS)
        return f"SELECT {listed} FROM `{self._table.database}`.`{API_KEY.name}` FINAL"

    def create(
        self,
        project_id: str,
        role: Role | None,
        permissions: Sequence[Permission],
        expires_at: dt.datetime | None,
        name: str,
    ) -> tuple[ApiKey, str]:
        """A new key; returns it and its secret (the only time the secret exists)."""
        if role is None and not permissions:
            raise ValueError("a key needs a role or at least one permission")
        secret = new_secret()
        key = ApiKey(
            id=str(uuid.uuid4()),
            project_id=str(uuid.UUID(project_id)),
            name=name,
            role=role,
            permissions=tuple(dict.fromkeys(permissions)),
            created_at=self._now.now(dt.UTC),
            expires_at=expires_at,
            revoked_at=None,
        )
        self._write(key, key_hash(secret), version=1)
        return key, secret

    def revoke(self, key_id: str) -> ApiKey | None:
        """Revoke a key by id; None when there is no such key. Revoking twice is harmless."""
        found = self._by_id(key_id)
        if found is None:
            return None
        key, hashed = found
        if key.revoked_at is not None:
            return key
        revoked = ApiKey(**{**key.__dict__, "revoked_at": self._now.now(dt.UTC)})
        self._write(revoked, hashed, version=2)
        with self._lock:
            self._cache.clear()
        return revoked

    def list(self, project_id: str | None = None) -> list[ApiKey]:
        sql = self._select()
        params: dict[str, object] = {}
        if project_id is not None:
            sql += " WHERE project_id = {project:UUID}"
            params["project"] = str(uuid.UUID(project_id))
        _, rows = self._table.query(sql + " ORDER BY created_at, id", params)
        return [_key(row) for row in rows]

    def find(self, secret: str) -> ApiKey | None:
        """The usable key with this secret, or None (unknown, expired or revoked)."""
        hashed = key_hash(secret)
        with self._lock:
            if hashed in self._cache:
                cached = self._cache[hashed]
                return (
                    cached if cached is not None and cached.usable(self._now.now(dt.UTC)) else None
                )
        _, rows = self._table.query(
            self._select() + " WHERE key_hash = {hash:String} LIMIT 1", {"hash": hashed}
        )
        key = _key(rows[0]) if rows else None
        with self._lock:
            self._cache[hashed] = key
        return key if key is not None and key.usable(self._now.now(dt.UTC)) else None

    def _by_id(self, key_id: str) -> tuple[ApiKey, str] | None:
        try:
            canonical = str(uuid.UUID(key_id))
        except ValueError:
            return None
        _, rows = self._table.query(
            self._select().replace(" FROM ", ", `key_hash` FROM ") + " WHERE id = {id:UUID}",
            {"id": canonical},
        )
        if not rows:
            return None
        return _key(rows[0][:-1]), str(rows[0][-1])

    def _write(self, key: ApiKey, hashed: str, version: int) -> None:
        row: dict[str, object] = {
            "id": key.id,
            "project_id": key.project_id,
            "name": key.name,
            "role": key.role.value if key.role else None,
            "permissions": [p.value for p in key.permissions],
            "key_hash": hashed,
            "created_at": key.created_at,
            "expires_at": key.expires_at,
            "revoked_at": key.revoked_at,
            "version": version,
        }
        self._table.insert(API_KEY.name, [row])


def _key(row: Sequence[object]) -> ApiKey:
    key_id, project_id, name, role, permissions, created_at, expires_at, revoked_at = row
    assert isinstance(created_at, dt.datetime)
    assert expires_at is None or isinstance(expires_at, dt.datetime)
    assert revoked_at is None or isinstance(revoked_at, dt.datetime)
    assert isinstance(permissions, list | tuple)
    return ApiKey(
        id=str(key_id),
        project_id=str(project_id),
        name=str(name),
        role=Role(str(role)) if role else None,
        permissions=tuple(Permission(str(p)) for p in permissions),
        created_at=created_at,
        expires_at=expires_at,
        revoked_at=revoked_at,
    )
