"""A rule's filter as a ClickHouse condition over the events table's `fields` map.

`fields` holds each field's value as text (`disparo.matching.filter_fields`), so every
operator here is `disparo.filters.passes` over that text; a property test on the real engine
holds the two to the same answer. One condition per operator serves both the one-rule
queries (operands as parameters) and the many-rules one (operands as array elements).
"""

from __future__ import annotations

from disparo.filters import NUMBER_OPERATORS, NUMBER_TEXT, ONE_OF

_COMPARE = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
# The same pattern as the matcher's, anchored; it has no quote or backslash to escape.
_IS_NUMBER = f"'^{NUMBER_TEXT}$'"
assert not {"'", "\\"} & set(NUMBER_TEXT)


def passes(name: str, path: str, operand: str) -> str:
    """The condition that the field at SQL expression `path` passes operator `name`.

    `operand` is an SQL expression of the operand's type: an array of texts (a list, `not`),
    a number (`gt`, `gte`, `lt`, `lte`), 1 or 0 (`exists`) or a text (`prefix`).
    """
    has, value = f"mapContains(fields, {path})", f"fields[{path}]"
    if name == ONE_OF:
        return f"{has} AND has({operand}, {value})"
    if name == "not":
        return f"NOT ({has} AND has({operand}, {value}))"
    if name == "exists":
        return f"{has} = {operand}"
    if name == "prefix":
        return f"{has} AND startsWith({value}, {operand})"
    if name in NUMBER_OPERATORS:
        number = f"match({value}, {_IS_NUMBER}) AND toFloat64OrZero({value})"
        return f"{has} AND {number} {_COMPARE[name]} {operand}"
    raise ValueError(f"unknown filter operator {name!r}")
