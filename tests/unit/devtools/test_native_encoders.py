"""`devtools.traffic.native`: each provider's payloads, run through the product's normalizer
for that provider, build the same rows as the generator's own canonical events of the calls
the provider can express (renamed to the provider's ids, times at its resolution). The
columns a provider genuinely cannot carry are listed below with the reason; nothing else is
ignored. Also: determinism, the senders' authentication as the gateway checks it, and the
CLI's routing snippet and CEL file."""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import yaml
from typer.testing import CliRunner

from devtools.cli import app as devtools_app
from devtools.native_sender import Signer
from devtools.traffic.native import asterisk, freeswitch, portsip, twilio
from devtools.traffic.native.config import asterisk_endpoint, routing_config
from devtools.traffic.native.model import (
    Encoded,
    Post,
    canonical_events,
    simulated_calls,
    simulated_project,
)
from schemas.tables import OUTBOUND_RELATION_IDS
from tests.unit.core.providers.provider_fixtures import Tables, rows_by_call
from worker.core.providers import asterisk_cel as n_asterisk
from worker.core.providers import freeswitch as n_freeswitch
from worker.core.providers import portsip as n_portsip
from worker.core.providers import twilio as n_twilio
from worker.core.providers.base import Normalized, ProviderContext
from worker.gateway.auth import BasicAuth, SharedSecret, TwilioSignature
from worker.gateway.config import GatewayConfig
from worker.service.settings import Settings

SEED = 7
CALLS = 150
ITEM, PARENT, CALL_LOG, CDR = (
    "incoming_call_log_item",
    "incoming_call_log",
    "call_log",
    "cdr",
)

# -- what a provider cannot carry (table -> columns), and why --------------------------------
# Every provider: `version` counts the call's distinct events, and providers send another
# number of them (no ringing in CDRs and CEL, Twilio's extra <Dial action>); `status_message`
# is the provider's own cause text (hangup_cause, "twilio busy", dialstatus), not the
# generator's free text.
EVERYWHERE = {t: {"version", "status_message"} for t in (ITEM, PARENT, CALL_LOG, CDR)}
# PortSIP, FreeSWITCH and Asterisk do not know ringlog's escalation rules (Twilio gets them
# on the <Number statusCallback> query).
NO_RULES = {
    ITEM: {"incoming_call_policy_escalation_rule_id"},
    PARENT: {"current_escalation_rule_order", "repeat_count"},
}
IGNORED: dict[str, dict[str, set[str]]] = {
    # a StatusCallback query carries flat strings: the relation ids, not the nested call_data
    "twilio": {CALL_LOG: {"call_data"}},
    # a CDR carries no ringlog fields: FreeSWITCH's placed call has its own call_data
    "freeswitch": {**NO_RULES, CALL_LOG: {"call_data", *OUTBOUND_RELATION_IDS}},
    # call_cdr always holds a CDR per target; the generator's incoming calls have none
    "portsip": {**NO_RULES, CDR: {"*"}},
    "asterisk": NO_RULES,
}
# Whole seconds: Twilio's RFC 2822 `Timestamp`, PortSIP's Unix seconds.
RESOLUTION_MS = {"twilio": 1000, "portsip": 1000, "freeswitch": 1, "asterisk": 1}
ENCODE: dict[str, Callable[[list[Any]], Encoded]] = {
    "twilio": twilio.encode,
    "portsip": portsip.encode,
    "freeswitch": freeswitch.encode,
    "asterisk": asterisk.encode,
}


def context(provider: str) -> ProviderContext:
    """The gateway's context from the routing snippet that --print-config prints."""
    config = GatewayConfig.model_validate(routing_config(simulated_project(SEED), provider, "t"))
    found = config.context(provider, "t")  # type: ignore[arg-type]
    assert found is not None
    return found


def normalize(provider: str, encoded: Encoded) -> Normalized:
    ctx = context(provider)
    out = Normalized()
    if provider == "asterisk":
        for line in encoded.lines:
            out += n_asterisk.normalize_line(line, ctx)
    for post in encoded.posts:
        out += _normalize_post(provider, post, ctx)
    return out


def _normalize_post(provider: str, post: Post, ctx: ProviderContext) -> Normalized:
    if provider == "twilio":
        assert post.form is not None
        # the gateway stamps requests that carry no time with their receipt time
        received = datetime.fromtimestamp(post.at_ms / 1000, UTC)
        return n_twilio.webhook(
            post.form, dataclasses.replace(ctx, received_at=received), post.query
        )
    assert post.body is not None
    if provider == "portsip":
        return n_portsip.webhook_body(post.body, ctx)
    return n_freeswitch.normalize_body(post.body, ctx)


def without_ignored(provider: str, tables: Tables) -> Tables:
    ignored = IGNORED[provider]
    out: Tables = {}
    for table, rows in tables.items():
        drop = EVERYWHERE.get(table, set()) | ignored.get(table, set())
        if "*" in drop:
            continue
        out[table] = [{k: v for k, v in row.items() if k not in drop} for row in rows]
    return out


@pytest.fixture(scope="module")
def calls() -> list[Any]:
    return simulated_calls(CALLS, seed=SEED)


@pytest.mark.parametrize("provider", sorted(ENCODE))
def test_normalized_payloads_build_the_generators_rows(provider: str, calls: list[Any]) -> None:
    encoded = ENCODE[provider](calls)
    normalized = normalize(provider, encoded)
    assert normalized.unmapped == ()  # nothing the encoder wrote is dead-lettered
    reference = [
        event
        for call in encoded.calls
        for event in canonical_events(call, encoded.renamed, resolution_ms=RESOLUTION_MS[provider])
    ]
    got = without_ignored(provider, rows_by_call(normalized.events))
    want = without_ignored(provider, rows_by_call(reference))
    assert sorted(got) == sorted(want)
    for table in want:
        assert got[table] == want[table], table


@pytest.mark.parametrize("provider", sorted(ENCODE))
def test_the_expressed_calls_cover_every_incoming_outcome(provider: str, calls: list[Any]) -> None:
    encoded = ENCODE[provider](calls)
    reference = [e for c in encoded.calls for e in canonical_events(c, encoded.renamed)]
    statuses = {row["status"] for row in rows_by_call(reference)[PARENT]}
    assert {"Completed", "NoAnswer", "CallerHungUp"} <= statuses
    incoming = [c for c in calls if c.kind == "incoming" and not c.open]
    assert len([c for c in encoded.calls if c.kind == "incoming"]) >= 0.75 * len(incoming)
    outbound = [c for c in encoded.calls if c.kind == "outbound"]
    assert bool(outbound) == (provider in ("twilio", "freeswitch"))
    assert sum(encoded.skipped.values()) > 0  # PBX CDR calls at least


@pytest.mark.parametrize("provider", sorted(ENCODE))
def test_same_seed_same_payloads(provider: str) -> None:
    first = ENCODE[provider](simulated_calls(40, seed=3))
    again = ENCODE[provider](simulated_calls(40, seed=3))
    other = ENCODE[provider](simulated_calls(40, seed=4))
    assert (first.posts, first.lines) == (again.posts, again.lines)
    assert (first.posts, first.lines) != (other.posts, other.lines)


SECRETS = Settings(
    gateway_public_url="https://ringlog.example.com",
    twilio_auth_token="tw-token-0123456789",
    portsip_webhook_secret="ps-secret",
    freeswitch_user="fs",
    freeswitch_password="fs-password",
)


@pytest.mark.parametrize("provider", ["twilio", "portsip", "freeswitch"])
def test_requests_pass_the_gateways_checks(provider: str, calls: list[Any]) -> None:
    signer = Signer(provider, SECRETS, "http://127.0.0.1:8322", "acme")
    post = next(p for p in ENCODE[provider](calls).posts if p.query or provider != "twilio")
    request = signer.request(post)
    assert request.url.path == f"/{provider}/acme/{post.route}"
    headers = {k.lower(): v for k, v in request.headers.items()}
    if provider == "twilio":
        form = dict(parse_qsl(request.content.decode()))
        assert form == post.form and dict(request.url.params) == post.query
        check = TwilioSignature("tw-token-0123456789", "https://ringlog.example.com")
        assert check.valid(str(request.url), form, headers["x-twilio-signature"])
        assert not check.valid(
            str(request.url), {**form, "CallStatus": "busy"}, headers["x-twilio-signature"]
        )
    elif provider == "portsip":
        assert SharedSecret("ps-secret").valid(headers)
        assert request.content == post.body
    else:
        assert BasicAuth("fs", "fs-password").valid(headers)
        assert not BasicAuth("fs", "other").valid(headers)


def test_print_config_is_a_routing_file_for_the_traffic() -> None:
    result = CliRunner().invoke(
        devtools_app,
        ["simulate", "--as", "asterisk", "--print-config", "--tenant", "pbx", "--seed", "5"],
    )
    assert result.exit_code == 0, result.output
    config = GatewayConfig.model_validate(yaml.safe_load(result.output))
    project = simulated_project(5)
    assert config.tenants("asterisk") == ["pbx"]
    assert config.asterisk["pbx"].numbers.keys() == {p.routing_number for p in project.policies}
    user = project.users[0]
    assert str(config.users[asterisk_endpoint(user.phone)]) == user.id
    assert config.phones[asterisk_endpoint(user.phone)] == user.phone


def test_asterisk_writes_the_cel_file_and_the_import_command(tmp_path: Path) -> None:
    target = tmp_path / "cel.csv"
    args = [
        "simulate",
        "--as",
        "asterisk",
        "--calls",
        "20",
        "--out",
        str(target),
        "--tenant",
        "pbx",
    ]
    result = CliRunner().invoke(devtools_app, args)
    assert result.exit_code == 0, result.output
    lines = target.read_text().splitlines()
    assert lines and all(len(row) == 20 for row in csv.reader(lines))  # cel_custom's columns
    assert f"ringlog import asterisk-cel {target} --tenant pbx" in " ".join(result.output.split())
    assert "skipped" in result.output


def test_unknown_provider_is_refused() -> None:
    result = CliRunner().invoke(devtools_app, ["simulate", "--as", "sip"])
    assert result.exit_code == 2
