"""Realistic attempt rows generated inside ClickHouse (INSERT ... SELECT FROM numbers()).

One day holds `per_day` attempts spread over the day, `orders` distinct orders, `rules`
rules of `accounts` accounts, `failure_pct` % failures with a mix of reasons, and bodies
shaped like disparo's own webhooks (Standard Webhooks envelope around the order event), so
sizes and compression match what the sink writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from analytics.history import schema

EVENT_TYPES = "['order.dispatched','tracking.updated','pre_invoice.created','order.delivered']"
STATUSES = "['dispatched','in_transit','invoiced','delivered']"
FAIL_REASONS = "['http_5xx','timeout','connection','http_4xx','dns','tls']"
FAIL_CODES = "[503,0,0,404,0,0]"
ERROR_PAGE = "'<html><body>503 Service Unavailable</body></html>'"
ACK = """'{"received":true}'"""


@dataclass(frozen=True)
class Mix:
    """The shape of one day of traffic."""

    per_day: int = 1_000_000
    orders: int = 200_000
    rules: int = 500
    failure_pct: float = 3.0
    accounts: int = 500  # each rule belongs to account `acct-<rule % accounts>`


def _event_parts(day: date, mix: Mix) -> dict[str, str]:
    """Expressions of event `number` of a day, shared by its attempt and its events row."""
    n, d = "number", day.toordinal()
    order = (
        f"concat('ORD-', toString({day.toordinal() % 1000}), '-', "
        f"toString(cityHash64({n}, 1) % {mix.orders}))"
    )
    return {
        "at": (
            f"toDateTime64('{day.isoformat()} 00:00:00', 3, 'UTC') "
            f"+ toIntervalMillisecond(intDiv({n} * 86400000, {mix.per_day}))"
        ),
        "order": order,
        "rule": f"cityHash64({n}, 14) % {mix.rules}",
        "event_type": f"{EVENT_TYPES}[1 + cityHash64({n}, 4) % 4]",
        "status_text": f"{STATUSES}[1 + cityHash64({n}, 4) % 4]",
        "carrier": f"['Correios','Jadlog','Loggi','Total Express'][1 + cityHash64({n}, 5) % 4]",
        # One code per order, as a carrier gives it: every event of the order carries it.
        "tracking": f"concat('BR', toString(cityHash64({order}, 6) % 10000000000), 'XX')",
        "items": f"toString(1 + cityHash64({n}, 7) % 9)",
        "cents": f"toString(cityHash64({n}, 8) % 500000)",
        "warehouse": f"concat('WH-', toString(cityHash64({n}, 9) % 40))",
        # The same id in the attempts and the events table: coverage queries join on it.
        "event_id": (
            f"reinterpretAsUUID(concat(reinterpretAsString(cityHash64({d}, {n}, 'e1')), "
            f"reinterpretAsString(cityHash64({d}, {n}, 'e2'))))"
        ),
        "account": (
            f"concat('acct-', toString((cityHash64({n}, 14) % {mix.rules}) % {mix.accounts}))"
        ),
    }


def _event_json(p: dict[str, str], with_account: bool) -> str:
    account = f'\'","account_id":"\', {p["account"]}, ' if with_account else ""
    return (
        'concat(\'{"event_id":"\', toString(' + p["event_id"] + '), \'","event_type":"\', '
        f'{p["event_type"]}, \'","order_id":"\', {p["order"]}, \'","order_status":"\', '
        f'{p["status_text"]}, {account}\'","occurred_at":"\', toString(at), '
        f'\'Z","payload":{{"carrier":"\', {p["carrier"]}, \'","tracking_code":"\', '
        f'{p["tracking"]}, \'","items":\', {p["items"]}, \',"total_cents":\', {p["cents"]}, '
        f"',\"warehouse\":\"', {p['warehouse']}, '\"}}}}')"
    )


def fill_events_day(database: str, day: date, mix: Mix) -> str:
    """An INSERT ... SELECT that writes one day of order events (one per attempt of the day)."""
    p = _event_parts(day, mix)
    fields = (
        f"map('event_id', toString({p['event_id']}), 'event_type', {p['event_type']}, "
        f"'order_id', {p['order']}, 'order_status', {p['status_text']}, "
        f"'account_id', {p['account']}, 'payload.carrier', {p['carrier']}, "
        f"'payload.tracking_code', {p['tracking']}, 'payload.items', {p['items']}, "
        f"'payload.total_cents', {p['cents']}, 'payload.warehouse', {p['warehouse']})"
    )
    columns = {
        "published_at": "at",
        "event_id": p["event_id"],
        "event_type": p["event_type"],
        "order_id": p["order"],
        "order_status": p["status_text"],
        "occurred_at": "at",
        "account_id": p["account"],
        "fields": fields,
        # The account's search key (every bench account names this one): the view
        # `search_keys_feed` files it under its value as the events go in.
        "search_values": f"map('payload.tracking_code', {p['tracking']})",
        "event_json": _event_json(p, with_account=True),
        "kafka_partition": "number % 6",
        "kafka_offset": f"{day.toordinal()} * {mix.per_day} + number",
    }
    select = ", ".join(f"{expr} AS {name}" for name, expr in columns.items())
    return (
        f"INSERT INTO {database}.{schema.EVENTS_TABLE} ({', '.join(columns)}) "
        f"SELECT {select} FROM (SELECT number, {p['at']} AS at FROM numbers({mix.per_day}))"
    )


def fill_day(database: str, day: date, mix: Mix) -> str:
    """An INSERT ... SELECT that writes one day of attempts."""
    n = "number"
    p = _event_parts(day, mix)
    order, rule, at = p["order"], p["rule"], p["at"]
    event_type, status_text = p["event_type"], p["status_text"]
    failed = f"(cityHash64({n}, 2) % 10000) < {int(mix.failure_pct * 100)}"
    kind = f"cityHash64({n}, 3) % 6"
    event = _event_json(p, with_account=False)
    columns = {
        "dispatched_at": "at",
        "attempt_id": f"generateUUIDv4({n})",
        "dispatch_id": f"concat('msg_', hex(cityHash64({n}, 10)))",
        "attempt": f"if({failed}, 1 + cityHash64({n}, 11) % 5, 1)",
        "manual": f"cityHash64({n}, 12) % 1000 = 0",
        "final": f"NOT {failed} OR cityHash64({n}, 13) % 5 = 0",
        "order_id": order,
        "order_status": status_text,
        "event_id": p["event_id"],
        "event_type": event_type,
        "rule_id": f"60000 + {rule}",
        "url": f"concat('https://hooks.customer', toString({rule}), '.example.com/disparo')",
        "status": f"if({failed}, 'failure', 'success')",
        "reason": f"if({failed}, {FAIL_REASONS}[1 + {kind}], 'ok')",
        "http_status": f"if({failed}, {FAIL_CODES}[1 + {kind}], 200)",
        "error": f"if({failed} AND {FAIL_CODES}[1 + {kind}] = 0, 'timed out after 10 s', '')",
        "duration_ms": f"if({failed} AND {kind} = 1, 10000, 20 + cityHash64({n}, 15) % 400)",
        "request_excerpt": (
            f'concat(\'{{"type":"\', {event_type}, \'","timestamp":"\', toString(at), '
            "'Z\",\"data\":', event, '}')"
        ),
        "response_excerpt": f"if({failed}, {ERROR_PAGE}, {ACK})",
        "kafka_partition": f"{n} % 6",
        "kafka_offset": n,
        "retry_tier": f"if({failed} AND NOT (cityHash64({n}, 13) % 5 = 0), '1m', '')",
        "event_json": "event",
        "account_id": f"concat('acct-', toString(({rule}) % {mix.accounts}))",
        "request_headers": (
            'concat(\'{"user-agent": "disparo-webhooks/0.1", "content-type": '
            '"application/json", "webhook-id": "msg_\', hex(cityHash64(number, 10)), '
            '\'", "webhook-timestamp": "\', toString(toUnixTimestamp(at)), '
            '\'", "webhook-signature": "v1,\', base64Encode(toString(cityHash64(number, 16))), '
            "'\"}')"
        ),
    }
    assert set(columns) == {name for name, _ in schema.ATTEMPT_COLUMNS}
    select = ", ".join(f"{expr} AS {name}" for name, expr in columns.items())
    return (
        f"INSERT INTO {database}.{schema.TABLE} ({', '.join(columns)}) "
        f"SELECT {select} FROM (SELECT number, {at} AS at, {event} AS event "
        f"FROM numbers({mix.per_day}))"
    )
