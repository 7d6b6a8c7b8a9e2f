"""`python -m devtools simulate --as PROVIDER`: the generator's calls in a provider's own
format, through `ringlog gateway` (Twilio, PortSIP, FreeSWITCH) or `ringlog import
asterisk-cel` (Asterisk), so the demo shows the path from a PBX's point of view."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import yaml
from rich.console import Console

from devtools.native_sender import MissingSecret, SendStats, send_posts
from devtools.traffic.native import asterisk, freeswitch, portsip, twilio
from devtools.traffic.native.config import routing_config
from devtools.traffic.native.model import Encoded, simulated_calls, simulated_project
from worker.service.settings import Settings

ENCODERS: dict[str, ModuleType] = {
    "twilio": twilio,
    "portsip": portsip,
    "freeswitch": freeswitch,
    "asterisk": asterisk,
}
DEFAULT_CEL_FILE = Path("var/simulated-cel.csv")


def config_snippet(provider: str, seed: int, tenant: str) -> str:
    """The routing-file entries the simulated traffic needs, as YAML."""
    config = routing_config(simulated_project(seed), provider, tenant)
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def encode(provider: str, calls: int, seed: int, start: datetime | None = None) -> Encoded:
    """The calls in `provider`'s format; live runs start now, so times look current."""
    begin = start or datetime.now(UTC).replace(microsecond=0)
    encoded: Encoded = ENCODERS[provider].encode(simulated_calls(calls, seed=seed, start=begin))
    return encoded


def print_skipped(encoded: Encoded, out: Console) -> None:
    for reason, n in sorted(encoded.skipped.items()):
        out.print(f"  skipped {n}: {reason}")


def run_webhooks(
    provider: str,
    encoded: Encoded,
    *,
    settings: Settings,
    gateway: str,
    tenant: str,
    concurrency: int,
    out: Console,
) -> int:
    """POST the payloads; the exit code is 1 when any was refused or not answered."""

    def progress(stats: SendStats, total: int) -> None:
        out.print(f"  posted {stats.posted}/{total} ({stats.ok} 2xx)")

    try:
        stats = asyncio.run(
            send_posts(
                provider,
                encoded.posts,
                settings=settings,
                gateway=gateway,
                tenant=tenant,
                concurrency=concurrency,
                progress=progress,
            )
        )
    except MissingSecret as exc:
        out.print(f"[bold red]cannot sign the requests:[/] {exc} (the gateway reads it too)")
        return 2
    refused = ", ".join(f"{n}× {code}" for code, n in sorted(stats.refused.items())) or "none"
    errors = ", ".join(f"{n}× {name}" for name, n in sorted(stats.errors.items()))
    out.print(
        f"{provider}: {len(encoded.calls)} calls, posted {stats.posted} requests to "
        f"{gateway} in {stats.elapsed_s:.1f}s: {stats.ok} 2xx, refused: {refused}"
        + (f", no answer: {errors}" if errors else "")
    )
    return 1 if stats.failed else 0


def run_asterisk(
    encoded: Encoded, *, out_file: Path, tenant: str, do_import: bool, out: Console
) -> int:
    """Write the CEL file; print (or run) the import command."""
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text("".join(line + "\n" for line in encoded.lines), encoding="utf-8")
    command = ["ringlog", "import", "asterisk-cel", str(out_file), "--tenant", tenant]
    out.print(
        f"asterisk: {len(encoded.calls)} calls, {len(encoded.lines)} CEL records in {out_file}"
    )
    if not do_import:
        out.print("import them with: " + " ".join(command))
        return 0
    runner = [sys.executable, "-c", "from worker.cli.main import main; main()", *command[1:]]
    return subprocess.run(runner, check=False).returncode
