"""The generator's calls in the providers' own formats, for `python -m devtools simulate --as`.

Pure and deterministic for a seed: `simulated_calls` plays calls with the generator's
scenarios, and each provider module turns them into what that provider would send:

- `twilio`: signed-form webhooks (voice, per-leg status callbacks, `<Dial action>`);
- `portsip`: one `call_cdr` webhook per call;
- `freeswitch`: one `mod_json_cdr` body per leg;
- `asterisk`: `cel_custom` CSV lines.

A call the provider cannot express is skipped and counted by reason (`Encoded.skipped`);
late cost reports are never sent (no webhook of these providers carries a price).
"""

from devtools.traffic.native.model import (
    Encoded,
    Post,
    canonical_events,
    simulated_calls,
    simulated_project,
)

__all__ = ["Encoded", "Post", "canonical_events", "simulated_calls", "simulated_project"]
