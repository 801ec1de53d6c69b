"""A dispatch's id computed in SQL, exactly as the worker's `dispatch_id_for` does."""

from __future__ import annotations

from disparo.schemas import ID_NAMESPACE


def dispatch_id_sql(event_id: str, rule_id: str) -> str:
    """`disparo.schemas.dispatch_id_for` in SQL: 'msg_' + the hex of a uuid5 (SHA-1 based).

    The digest is written three times; ClickHouse computes an expression once per row.
    """
    h = (
        f"substring(SHA1(concat(unhex('{ID_NAMESPACE.hex}'), toString({event_id}), '/', "
        f"toString({rule_id}))), 1, 16)"
    )
    version = f"char(bitOr(bitAnd(reinterpretAsUInt8(substring({h}, 7, 1)), 15), 80))"  # v5
    variant = f"char(bitOr(bitAnd(reinterpretAsUInt8(substring({h}, 9, 1)), 63), 128))"
    parts = (
        f"substring({h}, 1, 6), {version}, substring({h}, 8, 1), {variant}, substring({h}, 10, 7)"
    )
    return f"concat('msg_', lower(hex(concat({parts}))))"
