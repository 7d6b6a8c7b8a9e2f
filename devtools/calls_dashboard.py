"""Writes deploy/grafana/ringlog-calls-dashboard.json: the analysts' dashboard (Grafana's
ClickHouse data source) beside the operators' one. Its panels' SQL lives here, once, and the
test suite runs every panel against the embedded engine (tests/integration/
test_calls_dashboard.py), so a panel cannot silently break when a column changes.

    python -m devtools.calls_dashboard          # rewrite the JSON
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "ringlog-calls-dashboard.json"
DATASOURCE: Final = {"type": "grafana-clickhouse-datasource", "uid": "${clickhouse}"}

# (title, panel type, SQL). `$__timeFilter(col)` and `$__timeInterval(col)` are the data
# source's macros; tables resolve in the data source's default database.
PANELS: Final[list[tuple[str, str, str]]] = [
    (
        "Incoming calls and answer rate",
        "timeseries",
        "SELECT $__timeInterval(started_at) AS time, count() AS calls, "
        "round(countIf(answered_by_user_id IS NOT NULL) / count(), 3) AS answer_rate "
        "FROM incoming_call_log FINAL WHERE $__timeFilter(started_at) "
        "GROUP BY time ORDER BY time",
    ),
    (
        "Time to answer (seconds)",
        "stat",
        "SELECT round(quantileExact(0.5)(dateDiff('millisecond', started_at, answered_at)) "
        "/ 1000, 1) AS p50, "
        "round(quantileExact(0.9)(dateDiff('millisecond', started_at, answered_at)) "
        "/ 1000, 1) AS p90 "
        "FROM incoming_call_log FINAL "
        "WHERE answered_at IS NOT NULL AND $__timeFilter(started_at)",
    ),
    (
        "Escalation depth (dial attempts per call)",
        "barchart",
        "SELECT toString(dial_attempts) AS attempts, count() AS calls "
        "FROM incoming_call_log FINAL WHERE $__timeFilter(started_at) "
        "GROUP BY dial_attempts ORDER BY dial_attempts",
    ),
    (
        "Busiest numbers",
        "table",
        "SELECT routing_phone_number AS number, count() AS calls, "
        "countIf(answered_by_user_id IS NULL) AS unanswered "
        "FROM incoming_call_log FINAL WHERE $__timeFilter(started_at) "
        "GROUP BY number ORDER BY calls DESC, number LIMIT 10",
    ),
    (
        "Busiest policies",
        "table",
        "SELECT toString(incoming_call_policy_id) AS policy, count() AS calls, "
        "round(countIf(answered_by_user_id IS NOT NULL) / count(), 3) AS answer_rate "
        "FROM incoming_call_log FINAL WHERE $__timeFilter(started_at) "
        "GROUP BY policy ORDER BY calls DESC, policy LIMIT 10",
    ),
    (
        "Cost by direction (US cents)",
        "barchart",
        "SELECT direction, cents FROM ("
        "SELECT 1 AS n, 'incoming legs' AS direction, "
        "sum(incoming_call_cost_in_usd_cents) AS cents "
        "FROM incoming_call_log FINAL WHERE $__timeFilter(started_at) "
        "UNION ALL SELECT 2, 'forwarded to users', sum(outgoing_call_cost_in_usd_cents) "
        "FROM incoming_call_log FINAL WHERE $__timeFilter(started_at) "
        "UNION ALL SELECT 3, 'outbound calls', sum(call_cost_in_usd_cents) "
        "FROM call_log FINAL WHERE $__timeFilter(started_at) "
        "UNION ALL SELECT 4, 'PBX CDRs', sum(cost) "
        "FROM cdr FINAL WHERE $__timeFilter(started_at)) ORDER BY n",
    ),
    (
        "Cost by called prefix (US cents)",
        "table",
        "SELECT substring(routing_phone_number, 1, 3) AS prefix, count() AS calls, "
        "sum(call_cost_in_usd_cents) AS cents "
        "FROM incoming_call_log FINAL WHERE $__timeFilter(started_at) "
        "GROUP BY prefix ORDER BY cents DESC, prefix LIMIT 20",
    ),
    (
        "Cost by provider (US cents)",
        "table",
        "SELECT ifNull(source, '(none)') AS provider, count() AS calls, sum(cost) AS cents FROM ("
        "SELECT project_id, call_provider_call_id AS call_id, call_cost_in_usd_cents AS cost "
        "FROM incoming_call_log FINAL WHERE $__timeFilter(started_at)) AS c "
        "LEFT JOIN (SELECT project_id, call_id, any(source) AS source FROM call_event "
        "WHERE type = 'incoming_call.received' GROUP BY project_id, call_id) AS s "
        "USING (project_id, call_id) GROUP BY provider ORDER BY cents DESC, provider",
    ),
    (
        "Dead letters by reason",
        "table",
        "SELECT error_code AS reason, ifNull(error_field, '') AS field, count() AS events "
        "FROM rejected_event FINAL WHERE $__timeFilter(rejected_at) "
        "GROUP BY reason, field ORDER BY events DESC, reason, field",
    ),
]


def panel(n: int, title: str, kind: str, sql: str) -> dict[str, Any]:
    return {
        "id": n + 1,
        "type": kind,
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 12, "x": 12 * (n % 2), "y": 8 * (n // 2)},
        "targets": [
            {
                "datasource": DATASOURCE,
                "refId": "A",
                "editorType": "sql",
                "format": 1 if kind == "timeseries" else 0,
                "queryType": "timeseries" if kind == "timeseries" else "table",
                "rawSql": sql,
            }
        ],
    }


def dashboard() -> dict[str, Any]:
    return {
        "uid": "ringlog-calls",
        "title": "ringlog calls (analysts)",
        "description": "Calls, answer rate, time to answer, escalation depth, busiest numbers "
        "and policies, cost by direction, prefix and provider, dead letters: SQL over the "
        "FINAL rows in ClickHouse (panels generated by devtools/calls_dashboard.py).",
        "tags": ["ringlog", "calls"],
        "schemaVersion": 39,
        "editable": True,
        "time": {"from": "now-7d", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "clickhouse",
                    "type": "datasource",
                    "query": "grafana-clickhouse-datasource",
                    "label": "ClickHouse",
                }
            ]
        },
        "panels": [panel(n, *spec) for n, spec in enumerate(PANELS)],
    }


def render() -> str:
    return json.dumps(dashboard(), indent=1) + "\n"


def main() -> None:
    DASHBOARD.write_text(render(), encoding="utf-8")
    print(f"wrote {DASHBOARD.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
