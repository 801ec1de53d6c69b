"""A rule's filter on one field: its allowed values, or one operator. Pure functions.

Every test reads the field's value as text (`disparo.matching.as_text`; None when the event
has no comparable value there), because that is what the events table keeps for SQL to test
(`analytics.history.filter_sql`); a property test holds the two to the same answer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

# A list of allowed values, or {operator: operand}: `{"not": [...]}`, `{"gt": 5}`,
# `{"exists": true}`, `{"prefix": "BR"}` (design.md, "Reaching the platform's customers").
FilterSpec = list[str] | dict[str, Any]

ONE_OF = "in"  # the operator a plain list of values stands for
NUMBER_OPERATORS = ("gt", "gte", "lt", "lte")
OPERATORS = ("not", *NUMBER_OPERATORS, "exists", "prefix")
MAX_VALUES = 100
MAX_CHARS = 200
# The texts a number operator reads as numbers: decimal, optional fraction and exponent.
# Anything else (a word, "inf", " 5", "0x10") is not a number, so no number test passes.
NUMBER_TEXT = r"-?[0-9]+([.][0-9]+)?([eE][-+]?[0-9]+)?"
_NUMBER = re.compile(NUMBER_TEXT)


def operator_of(spec: FilterSpec) -> tuple[str, Any]:
    """The operator a (valid) filter uses and its operand; a list is `in` those values."""
    if isinstance(spec, list):
        return ONE_OF, spec
    ((name, operand),) = spec.items()
    return name, operand


def number_of(text: str) -> float | None:
    """The number a text holds, as a number operator reads it; None when it holds none."""
    return float(text) if _NUMBER.fullmatch(text) else None


def passes(spec: FilterSpec, text: str | None) -> bool:
    """True when a field whose value reads as `text` (None: absent) passes the filter."""
    name, operand = operator_of(spec)
    if name == ONE_OF:
        return text is not None and text in operand
    if name == "not":
        return text is None or text not in operand
    if name == "exists":
        return (text is not None) is bool(operand)
    if name == "prefix":
        return text is not None and text.startswith(operand)
    number = None if text is None else number_of(text)
    return number is not None and _compare(name, number, float(operand))


def _compare(name: str, number: float, bound: float) -> bool:
    if name == "gt":
        return number > bound
    if name == "gte":
        return number >= bound
    if name == "lt":
        return number < bound
    return number <= bound


def spec_problem(spec: Any) -> str | None:
    """Why a filter is not a valid list of values or operator object, or None."""
    if isinstance(spec, list):
        return _values_problem(spec, "needs")
    if not isinstance(spec, Mapping) or len(spec) != 1:
        return f"must be a list of values or one operator object ({_operators()})"
    ((name, operand),) = spec.items()
    if name not in OPERATORS:
        return f"has the unknown operator {str(name)[:40]!r}; use one of {_operators()}"
    if name == "not":
        return _values_problem(operand, "'not' needs")
    if name == "exists":
        return None if isinstance(operand, bool) else "'exists' takes true or false"
    if name == "prefix":
        if isinstance(operand, str) and 1 <= len(operand) <= MAX_CHARS:
            return None
        return f"'prefix' takes a text of 1 to {MAX_CHARS} characters"
    if isinstance(operand, int | float) and not isinstance(operand, bool):
        return None if math.isfinite(operand) else f"{name!r} takes a finite number"
    return f"{name!r} takes a number, not {type(operand).__name__}"


def _values_problem(values: Any, needs: str) -> str | None:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        return f"{needs} a list of texts"
    if not 1 <= len(values) <= MAX_VALUES:
        return f"{needs} 1 to {MAX_VALUES} values"
    if any(len(v) > MAX_CHARS for v in values):
        return f"has a value over {MAX_CHARS} characters"
    return None


def _operators() -> str:
    return ", ".join(OPERATORS)
