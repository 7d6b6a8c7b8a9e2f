"""The fixed world calls happen in: projects with their users, policies and escalation rules.

Derived from the seed alone, with its own rng, so it does not depend on the traffic options.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from devtools.traffic.values import phone


@dataclass(frozen=True, slots=True)
class User:
    id: str
    phone: str


@dataclass(frozen=True, slots=True)
class Rule:
    """One escalation step: its users are dialled in parallel."""

    id: str
    order: int
    users: tuple[User, ...]
    ring_timeout_ms: int


@dataclass(frozen=True, slots=True)
class Policy:
    """An incoming-call policy: rules dialled in order, the whole list `repeats` more times."""

    id: str
    routing_number: str
    rules: tuple[Rule, ...]
    repeats: int


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    policies: tuple[Policy, ...]
    users: tuple[User, ...]
    caller_ids: tuple[str, ...]


def build_world(seed: int, projects: int) -> tuple[Project, ...]:
    """`projects` projects (at least one), each with 12 users and 2-4 policies."""
    ns = uuid.uuid5(uuid.NAMESPACE_URL, f"https://ringlog.invalid/traffic/seed/{seed}")
    wrng = random.Random(f"ringlog-world-{seed}")

    def uid(*parts: object) -> str:
        # stable ids: the same seed names the same project / user / rule in every run
        return str(uuid.uuid5(ns, "/".join(str(p) for p in parts)))

    return tuple(_project(wrng, uid, p) for p in range(max(1, projects)))


_Uid = Callable[..., str]


def _project(wrng: random.Random, uid: _Uid, p: int) -> Project:
    users = tuple(User(uid("user", p, u), phone(wrng)) for u in range(12))
    policies = tuple(_policy(wrng, uid, users, p, k) for k in range(wrng.randint(2, 4)))
    caller_ids = tuple(phone(wrng) for _ in range(3))
    return Project(uid("project", p), policies, users, caller_ids)


def _policy(wrng: random.Random, uid: _Uid, users: tuple[User, ...], p: int, k: int) -> Policy:
    rules = tuple(
        _rule(wrng, uid, users, p, k, order) for order in range(1, wrng.randint(1, 4) + 1)
    )
    return Policy(uid("policy", p, k), phone(wrng), rules, wrng.choice((0, 1, 1, 2)))


def _rule(
    wrng: random.Random, uid: _Uid, users: tuple[User, ...], p: int, k: int, order: int
) -> Rule:
    n_users = 1 if wrng.random() < 0.6 else wrng.randint(2, 3)
    return Rule(
        uid("rule", p, k, order),
        order,
        tuple(wrng.sample(users, n_users)),
        wrng.choice((20_000, 25_000, 30_000)),
    )
