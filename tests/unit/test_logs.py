import json
import logging

from disparo.logs import JsonFormatter


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "consumers.worker", logging.INFO, "w.py", 1, "attempt %d failed", (2,), None
    )
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_lines_carry_the_delivery_fields() -> None:
    line = json.loads(
        JsonFormatter().format(
            _record(dispatch_id="msg_1", order_id="A-1", rule_id=7, unrelated="x")
        )
    )
    assert line["msg"] == "attempt 2 failed"
    assert (line["level"], line["logger"]) == ("INFO", "consumers.worker")
    assert (line["dispatch_id"], line["order_id"], line["rule_id"]) == ("msg_1", "A-1", 7)
    assert "unrelated" not in line
    assert line["ts"].endswith("+00:00")


def test_exceptions_are_kept_in_the_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = _record()
        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in line["exc"]
