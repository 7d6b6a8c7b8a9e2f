"""`ringlog apikey create | list | revoke`: the query APIs' keys.

Keys live hashed in the store's `api_key` table, which every API replica reads. In embedded
mode (chdb://) a running worker owns the store, so the change goes through its operator route
(/admin/api-keys, like `ringlog sql`); otherwise the store is opened directly.
"""

from __future__ import annotations

import datetime as dt
import sys
import uuid
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from worker.adapters.clickhouse.store import ClickHouseStore, StoreError, StoreUnavailable
from worker.api.keys import ApiKey, KeyRegistry, Permission, Role
from worker.cli.options import ClickhouseUrl, Database, HttpPort, console, out, settings_from
from worker.cli.worker_http import WorkerRefused, call_worker
from worker.service.settings import ConfigError, Settings, parse_duration

apikey_app = typer.Typer(
    help="API keys for the query APIs (OneUptime- and PortSIP-compatible routes).",
    no_args_is_help=True,
)

Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[bold red]apikey:[/] {message}")
    return typer.Exit(code)


def _expiry(text: str | None) -> dt.datetime | None:
    """'90d', '12h', ... from now, or an RFC 3339 time."""
    if text is None:
        return None
    try:
        return dt.datetime.now(dt.UTC) + parse_duration(text, "--expires")
    except ConfigError:
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _fail(
            f"--expires {text!r} is neither a duration (90d, 12h) nor an RFC 3339 time", 2
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _via_store(settings: Settings) -> ClickHouseStore:
    return settings.store()


def _run(
    settings: Settings, method: str, path: str, body: dict[str, Any] | None, local: Any
) -> Any:
    """Through the worker in embedded mode when one listens, else `local(registry)`."""
    if settings.clickhouse_url.startswith("chdb://"):
        try:
            answer = call_worker(
                settings, method, path, orjson.dumps(body) if body is not None else None
            )
        except WorkerRefused as exc:
            raise _fail(str(exc)) from None
        if answer is not None:
            return answer
    try:
        with _via_store(settings) as store:
            store.migrate()  # the api_key table exists in a store made before it
            return local(KeyRegistry(store))
    except StoreUnavailable as exc:
        raise _fail(
            f"{exc}. If a worker runs with this store, check RINGLOG_HTTP_PORT "
            f"(tried {settings.http_port})."
        ) from None
    except StoreError as exc:
        raise _fail(str(exc)) from None


@apikey_app.command("create")
def create(
    project: Annotated[str, typer.Option("--project", help="The project (UUID) the key reads")],
    role: Annotated[
        Role | None,
        typer.Option(
            "--role",
            help="ProjectOwner or ProjectAdmin (read and write items), ProjectMember or "
            "Viewer (read)",
        ),
    ] = None,
    permission: Annotated[
        list[Permission] | None,
        typer.Option(
            "--permission", help="A read permission (repeatable), for keys without a role"
        ),
    ] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="90d, 12h, ... or an RFC 3339 time")
    ] = None,
    name: Annotated[str, typer.Option("--name", help="Shown in request logs and lists")] = "",
    as_json: Json = False,
    clickhouse_url: ClickhouseUrl = None,
    database: Database = None,
    http_port: HttpPort = None,
) -> None:
    """Create a key and print it: the only time it is shown (only its hash is stored)."""
    permissions = list(permission or [])
    if role is None and not permissions:
        raise _fail("give --role or at least one --permission", 2)
    try:
        project = str(uuid.UUID(project))
    except ValueError:
        raise _fail(f"--project {project!r} is not a UUID", 2) from None
    expires_at = _expiry(expires)
    settings = settings_from(clickhouse_url=clickhouse_url, database=database, http_port=http_port)
    request = {
        "project_id": project,
        "role": role.value if role else None,
        "permissions": [p.value for p in permissions],
        "expires_at": expires_at.isoformat() if expires_at else None,
        "name": name,
    }

    def local(registry: KeyRegistry) -> dict[str, Any]:
        key, secret = registry.create(project, role, permissions, expires_at, name)
        return {**key.public(), "key": secret}

    created = _run(settings, "POST", "/admin/api-keys", request, local)
    if as_json:
        shown = {k: created[k] for k in ("id", "key", "project_id", "role", "expires_at")}
        sys.stdout.write(orjson.dumps(shown).decode() + "\n")
        return
    out.print(f"API key {created['id']} for project {created['project_id']}")
    out.print(
        f"  role: {created['role'] or '-'}  permissions: {', '.join(created['permissions']) or '-'}"
    )
    out.print(f"  expires: {created['expires_at'] or 'never'}")
    out.print(f"\n  {created['key']}\n")
    console.print(
        "Store it now: it is not shown again. Send it as the `ApiKey` header (OneUptime routes) "
        "or `Authorization: Bearer` (/api/calllogs)."
    )


@apikey_app.command("list")
def list_keys(
    project: Annotated[
        str | None, typer.Option("--project", help="Only this project's keys")
    ] = None,
    as_json: Json = False,
    clickhouse_url: ClickhouseUrl = None,
    database: Database = None,
    http_port: HttpPort = None,
) -> None:
    """List keys (never the keys themselves): id, project, role, expiry, revocation."""
    settings = settings_from(clickhouse_url=clickhouse_url, database=database, http_port=http_port)
    path = "/admin/api-keys" + (f"?project_id={project}" if project else "")

    def local(registry: KeyRegistry) -> dict[str, Any]:
        try:
            return {"keys": [k.public() for k in registry.list(project)]}
        except ValueError:
            raise _fail(f"--project {project!r} is not a UUID", 2) from None

    keys: list[dict[str, Any]] = _run(settings, "GET", path, None, local)["keys"]
    if as_json:
        sys.stdout.writelines(orjson.dumps(k).decode() + "\n" for k in keys)
        return
    table = Table("id", "project", "name", "role", "permissions", "expires", "revoked")
    for k in keys:
        table.add_row(
            k["id"],
            k["project_id"],
            k["name"],
            k["role"] or "-",
            ", ".join(k["permissions"]) or "-",
            k["expires_at"] or "never",
            k["revoked_at"] or "-",
        )
    out.print(table)
    out.print(f"{len(keys)} key(s)")


@apikey_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `ringlog apikey list`)")],
    clickhouse_url: ClickhouseUrl = None,
    database: Database = None,
    http_port: HttpPort = None,
) -> None:
    """Revoke a key: every API replica refuses it within 10 s (their lookup cache)."""
    settings = settings_from(clickhouse_url=clickhouse_url, database=database, http_port=http_port)

    def local(registry: KeyRegistry) -> dict[str, Any]:
        key: ApiKey | None = registry.revoke(key_id)
        if key is None:
            raise _fail(f"no API key with id {key_id}")
        return key.public()

    revoked = _run(settings, "POST", f"/admin/api-keys/{key_id}/revoke", None, local)
    out.print(
        f"revoked {revoked['id']} (project {revoked['project_id']}) at {revoked['revoked_at']}"
    )
