"""What an API key may do (DESIGN.md section 6, "Credentials").

Reading a resource needs any role or the resource's read permission; creating, updating and
deleting items needs ProjectOwner or ProjectAdmin. The refusals use OneUptime's wording.
"""

from __future__ import annotations

from typing import Final

from worker.api.keys import ApiKey, Permission, Role

WRITER_ROLES: Final = frozenset({Role.OWNER, Role.ADMIN})

_ROLE_TITLES: Final = {
    Role.OWNER: "Project Owner",
    Role.ADMIN: "Project Admin",
    Role.MEMBER: "Project Member",
    Role.VIEWER: "Viewer",
}
_PERMISSION_TITLES: Final = {
    Permission.READ_INCOMING_CALL_LOG: "Read Incoming Call Log",
    Permission.READ_INCOMING_CALL_LOG_ITEM: "Read Incoming Call Log Item",
    Permission.READ_CALL_LOG: "Read Call Log",
    Permission.READ_CDR: "Read Cdr",
}


def may_read(key: ApiKey, permission: Permission) -> bool:
    return key.role is not None or permission in key.permissions


def may_write(key: ApiKey) -> bool:
    return key.role in WRITER_ROLES


def read_refusal(title: str, permission: Permission) -> str:
    needed = [*_ROLE_TITLES.values(), _PERMISSION_TITLES[permission]]
    return (
        f"You do not have permissions to read {title}. You need one of these permissions: "
        + ", ".join(needed)
    )


def write_refusal(action: str, title: str) -> str:
    needed = [_ROLE_TITLES[Role.OWNER], _ROLE_TITLES[Role.ADMIN]]
    return (
        f"You do not have permissions to {action} {title}. You need one of these permissions: "
        + ", ".join(needed)
    )
