"""Queries over the events table (order coverage, dry runs, backfills): pure SQL builders.

A rule becomes a SQL condition over the row's `fields` map, which holds what
`disparo.matching.filter_fields` read from the event: the dispatcher's matcher and these
conditions read a filter path the same way (a property test holds them to it).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from analytics.errors import BadQuery
from analytics.history import filter_sql, schema
from analytics.history.dispatch_sql import dispatch_id_sql
from analytics.history.queries import TS_TYPE, Period, ts_param
from disparo.filters import NUMBER_OPERATORS, ONE_OF, FilterSpec, operator_of
from disparo.matching import ALL_EVENT_TYPES

# The latest event of an order: the one published last (ties: the later offset).
_LATEST = "(published_at, kafka_offset)"
SAMPLE_SIZE = 20
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class RuleShape(Protocol):
    """What matching reads of a rule."""

    @property
    def account_id(self) -> str: ...

    @property
    def event_types(self) -> list[str]: ...

    @property
    def filters(self) -> dict[str, FilterSpec]: ...


@dataclass(frozen=True)
class RuleScope:
    """A rule as the events queries see it: what it matches and since when."""

    rule_id: int
    fields: RuleShape
    since: datetime | None = None  # events before it are not the rule's (it was not active)


def rule_condition(rule: RuleShape, tag: str, params: dict[str, Any]) -> str:
    """The SQL condition true for the events `rule` matches (as if active); adds params."""
    clauses = [f"account_id = {{{tag}a:String}}"]
    params[f"{tag}a"] = rule.account_id
    if ALL_EVENT_TYPES not in rule.event_types:
        names = _values(f"{tag}t", rule.event_types, params)
        clauses.append(f"event_type IN ({names})")
    for i, (path, spec) in enumerate(sorted(rule.filters.items())):
        params[f"{tag}p{i}"] = path
        operand = _operand(f"{tag}v{i}_", spec, params)
        clauses.append(filter_sql.passes(operator_of(spec)[0], f"{{{tag}p{i}:String}}", operand))
    return " AND ".join(f"({c})" for c in clauses)


def _operand(tag: str, spec: FilterSpec, params: dict[str, Any]) -> str:
    """A filter's operand as parameters of its SQL type."""
    name, operand = operator_of(spec)
    if name in (ONE_OF, "not"):
        return f"[{_values(tag, operand, params)}]"
    if name == "exists":
        return "1" if operand else "0"
    params[tag] = operand
    return f"{{{tag}:String}}" if name == "prefix" else f"{{{tag}:Float64}}"


def _values(tag: str, values: Sequence[str], params: dict[str, Any]) -> str:
    for i, value in enumerate(values):
        params[f"{tag}{i}"] = value
    return ", ".join(f"{{{tag}{i}:String}}" for i in range(len(values)))


def _period(period: Period, params: dict[str, Any]) -> str:
    params.update(start=ts_param(period.start), end=ts_param(period.end))
    return f"published_at >= {{start:{TS_TYPE}}} AND published_at < {{end:{TS_TYPE}}}"


def dry_run(database: str, period: Period, rule: RuleShape) -> tuple[str, dict[str, Any]]:
    """Events and orders of a period a rule would match, and a sample of them, in one query."""
    params: dict[str, Any] = {}
    where = f"{_period(period, params)} AND {rule_condition(rule, 'r', params)}"
    sample = "(toString(event_id), order_id, event_type, order_status, published_at)"
    sql = (
        "SELECT uniqExact(event_id) AS matched_events, uniqExact(order_id) AS matched_orders, "
        f"groupArray({SAMPLE_SIZE})({sample}) AS sample "
        f"FROM {database}.{schema.EVENTS_TABLE} WHERE {where}"
    )
    return sql, params


def matched_event_ids(
    database: str, period: Period, rule: RuleShape, limit: int
) -> tuple[str, dict[str, Any]]:
    """The (order, event) ids of a period's stored events a rule matches, each once, oldest
    first: a backfill lists them first, then reads the events a chunk at a time."""
    params: dict[str, Any] = {}
    where = f"{_period(period, params)} AND {rule_condition(rule, 'r', params)}"
    sql = (
        "SELECT order_id, toString(event_id) AS event_id, min(published_at) AS first "
        f"FROM {database}.{schema.EVENTS_TABLE} WHERE {where} "
        f"GROUP BY order_id, event_id ORDER BY first, order_id, event_id LIMIT {limit + 1}"
    )
    return sql, params


def events_by_id(
    database: str, account_id: str, ids: Sequence[tuple[str, str]], period: Period
) -> tuple[str, dict[str, Any]]:
    """The stored events with these (order, event) ids, each once, in the order given."""
    params: dict[str, Any] = {"account": account_id}
    orders = _values("o", sorted({order for order, _ in ids}), params)
    events = _values("e", [event for _, event in ids], params)
    sql = (
        "SELECT toString(event_id) AS event_id, any(event_json) AS event_json "
        f"FROM {database}.{schema.EVENTS_TABLE} WHERE account_id = {{account:String}} "
        f"AND {_period(period, params)} AND order_id IN ({orders}) "
        f"AND toString(event_id) IN ({events}) GROUP BY event_id"
    )
    return sql, params


def sql_text(value: str) -> str:
    """A ClickHouse string literal; control characters as \\xHH escapes (a NUL included)."""
    body = value.replace("\\", "\\\\").replace("'", "\\'")
    return "'" + _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", body) + "'"


def _texts(values: Sequence[str]) -> str:
    return f"[{', '.join(map(sql_text, values))}]"


def _typed(items: Sequence[str], kind: str) -> str:
    """A literal array of the given type (an array of empty arrays has no type otherwise)."""
    return f"CAST([{', '.join(items)}], '{kind}')"


def rules_matched(rules: Sequence[RuleScope]) -> tuple[str, str]:
    """An array expression (the ids of the rules the row's event matches) and a condition
    naming the rules' accounts.

    The rules are data (literal arrays indexed by rule), not one condition per rule: each
    event is checked against its own account's rules only, so 500 rules cost about what one
    does. Filters are read from `fields` only when a rule has some.
    """
    by_account: dict[str, list[int]] = {}
    for i, scope in enumerate(rules, start=1):
        by_account.setdefault(scope.fields.account_id, []).append(i)
    types = (
        f"CAST([{', '.join(_texts(s.fields.event_types) for s in rules)}], 'Array(Array(String))')"
    )
    since = [int(s.since.timestamp() * 1000) if s.since else 0 for s in rules]
    checks = [
        f"(has({types}[i], '*') OR has({types}[i], event_type))",
        f"toUnixTimestamp64Milli(published_at) >= {since}[i]",
    ]
    if any(s.fields.filters for s in rules):
        checks.append(_filters_check([sorted(s.fields.filters.items()) for s in rules]))
    accounts = ", ".join(
        f"{sql_text(a)}, CAST({ids}, 'Array(UInt32)')" for a, ids in by_account.items()
    )
    ids = f"CAST({[s.rule_id for s in rules]}, 'Array(UInt64)')"
    candidates = f"map({accounts})[account_id]"  # the indexes of the event's account's rules
    matched = f"arrayMap(i -> {ids}[i], arrayFilter(i -> {' AND '.join(checks)}, {candidates}))"
    return matched, f"account_id IN ({', '.join(map(sql_text, by_account))})"


# Where each operator finds its operand among a filter's texts `vs` and number `n`.
_LAMBDA_OPERAND = {"in": "vs", "not": "vs", "prefix": "vs[1]", "exists": "n"}


def _filters_check(specs: list[list[tuple[str, FilterSpec]]]) -> str:
    """Every rule's filters as arrays indexed by rule (paths, operators, texts, numbers),
    and the condition that the row passes rule `i`'s."""
    paths = [_texts([path for path, _ in rule]) for rule in specs]
    names = [_texts([operator_of(spec)[0] for _, spec in rule]) for rule in specs]
    texts = [f"[{', '.join(_texts(_filter_texts(s)) for _, s in rule)}]" for rule in specs]
    numbers = [f"[{', '.join(_filter_number(s) for _, s in rule)}]" for rule in specs]
    used = sorted({operator_of(spec)[0] for rule in specs for _, spec in rule})
    branches = ", ".join(
        f"o = {sql_text(n)}, {filter_sql.passes(n, 'p', _LAMBDA_OPERAND.get(n, 'n'))}" for n in used
    )
    arrays = (
        f"{_typed(paths, 'Array(Array(String))')}[i], {_typed(names, 'Array(Array(String))')}[i], "
        f"{_typed(texts, 'Array(Array(Array(String)))')}[i], "
        f"{_typed(numbers, 'Array(Array(Float64))')}[i]"
    )
    return f"arrayAll((p, o, vs, n) -> multiIf({branches}, 0), {arrays})"


def _filter_texts(spec: FilterSpec) -> list[str]:
    name, operand = operator_of(spec)
    if name in (ONE_OF, "not"):
        return list(operand)
    return [operand] if name == "prefix" else []


def _filter_number(spec: FilterSpec) -> str:
    name, operand = operator_of(spec)
    if name in ("exists", *NUMBER_OPERATORS):
        return repr(float(operand))
    return "0"


def rules_accounts(rules: Sequence[RuleScope], account_id: str | None = None) -> str:
    """The condition naming the accounts of the rules (narrowed to one when given)."""
    if account_id is not None:
        return f"account_id = {sql_text(account_id)}"
    return (
        f"account_id IN ({', '.join(map(sql_text, sorted({s.fields.account_id for s in rules})))})"
    )


def latest_per_rule(
    database: str, rules: Sequence[RuleScope], where: str, params: dict[str, Any]
) -> str:
    """For each (order, rule) among events matching `where`: its latest matching event."""
    matched, accounts = rules_matched(rules)
    return (
        f"SELECT order_id, rule_id, any(account_id) AS account, "
        f"argMax(event_id, {_LATEST}) AS latest_event_id, "
        f"{dispatch_id_sql('latest_event_id', 'rule_id')} AS latest_dispatch_id, "
        f"argMax(event_type, {_LATEST}) AS latest_event_type, "
        f"argMax(order_status, {_LATEST}) AS latest_order_status, "
        f"max(published_at) AS latest_at "
        f"FROM {database}.{schema.EVENTS_TABLE} ARRAY JOIN {matched} AS rule_id "
        f"WHERE {where} AND {accounts} GROUP BY order_id, rule_id"
    )


@dataclass(frozen=True)
class CoverageCursor:
    """Where a page of undelivered orders ended (rows go newest first)."""

    at: str
    order_id: str
    rule_id: int

    def encode(self) -> str:
        raw = json.dumps([self.at, self.order_id, self.rule_id]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> CoverageCursor:
        try:
            at, order_id, rule_id = json.loads(
                base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            )
            datetime.fromisoformat(at)
            return cls(str(at), str(order_id), int(rule_id))
        except (ValueError, TypeError, binascii.Error):
            raise BadQuery("'cursor' is not one this API gave out; start without it") from None


def undelivered(
    database: str,
    period: Period,
    rules: Sequence[RuleScope],
    limit: int,
    after: CoverageCursor | None = None,
    account_id: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """(order, rule) pairs whose latest matching event of the period has no success."""
    params: dict[str, Any] = {}
    where = _period(period, params)
    if account_id is not None:
        where += " AND account_id = {account:String}"
        params["account"] = account_id
    latest = latest_per_rule(database, rules, where, params)
    # The attempts of the rules' accounts since the period began (an hour earlier: the
    # worker's clock is not Kafka's), by dispatch: read through the by_account projection.
    tried = (
        "SELECT dispatch_id, countIf(status IN ('success', 'failure')) AS attempts, "
        "countIf(status = 'success') AS ok, countIf(status = 'failure' AND final) AS failed, "
        "countIf(status = 'held') AS held, "
        # A newer event delivered, or a later status the customer holds: nothing is owed.
        "countIf(status IN ('superseded', 'regressed')) AS superseded "
        f"FROM {database}.{schema.TABLE} WHERE dispatched_at >= {{tried_from:{TS_TYPE}}} "
        f"AND {rules_accounts(rules, account_id)} "
        f"AND rule_id IN ({', '.join(str(s.rule_id) for s in rules)}) GROUP BY dispatch_id"
    )
    params["tried_from"] = ts_param(period.start - timedelta(hours=1))
    outer = ["t.ok = 0", "t.superseded = 0"]
    if after is not None:
        outer.append(
            f"(l.latest_at, l.order_id, l.rule_id) < "
            f"({{c_at:{TS_TYPE}}}, {{c_order:String}}, {{c_rule:UInt64}})"
        )
        params.update(c_at=ts_param(datetime.fromisoformat(after.at)), c_order=after.order_id)
        params["c_rule"] = after.rule_id
    sql = (
        f"WITH latest AS ({latest}) "
        "SELECT l.order_id AS order_id, l.rule_id AS rule_id, l.account AS account_id, "
        "l.latest_event_type AS latest_event_type, l.latest_order_status AS latest_order_status, "
        "l.latest_at AS latest_at, t.attempts AS attempts, "
        "multiIf(t.failed > 0, 'failed', t.held > 0 AND t.attempts = 0, 'held', 'pending') "
        "AS state "
        f"FROM latest AS l LEFT JOIN ({tried}) AS t "
        "ON t.dispatch_id = l.latest_dispatch_id "
        f"WHERE {' AND '.join(outer)} "
        f"ORDER BY latest_at DESC, order_id DESC, rule_id DESC LIMIT {limit + 1} "
        # Reading attempts in table order would skip the by_account projection (as for an
        # account's pages, queries.dispatches): 130 -> 84 ms for one account's week.
        "SETTINGS optimize_read_in_order = 0"
    )
    return sql, params


def latest_events(
    database: str,
    rules: Sequence[RuleScope],
    order_ids: Sequence[str],
    since: datetime,
    account_id: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """For each (order, rule) of these orders: the latest matching event, as JSON."""
    params: dict[str, Any] = {"since": ts_param(since)}
    orders = _values("o", order_ids, params)
    where = f"published_at >= {{since:{TS_TYPE}}} AND order_id IN ({orders})"
    if account_id is not None:
        where += " AND account_id = {account:String}"
        params["account"] = account_id
    matched, accounts = rules_matched(rules)
    sql = (
        f"SELECT order_id, rule_id, argMax(event_json, {_LATEST}) AS event_json "
        f"FROM {database}.{schema.EVENTS_TABLE} ARRAY JOIN {matched} AS rule_id "
        f"WHERE {where} AND {accounts} GROUP BY order_id, rule_id ORDER BY order_id, rule_id"
    )
    return sql, params


def last_attempts(
    database: str, dispatch_ids: Sequence[str], since: datetime, with_event: bool = False
) -> tuple[str, dict[str, Any]]:
    """The highest attempt number recorded per dispatch (resends continue from it); with
    `with_event`, also the event of its last attempt (what a resend sends)."""
    params: dict[str, Any] = {"since": ts_param(since)}
    ids = _values("d", dispatch_ids, params)
    event = ", argMax(event_json, (dispatched_at, attempt)) AS last_event" if with_event else ""
    sql = (
        f"SELECT dispatch_id, max(attempt) AS last_attempt{event} "
        f"FROM {database}.{schema.TABLE} WHERE dispatched_at >= {{since:{TS_TYPE}}} "
        f"AND dispatch_id IN ({ids}) GROUP BY dispatch_id"
    )
    return sql, params
