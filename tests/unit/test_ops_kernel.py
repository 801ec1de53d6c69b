"""Thread stacks without a signal, failpoint specs and the dead-letter format."""

from __future__ import annotations

import threading

from disparo import failpoints
from disparo.dead_letter import MAX_REASON_CHARS, dead_letter_headers
from disparo.stacks import thread_stacks


def test_thread_stacks_name_each_thread_and_where_it_waits() -> None:
    release = threading.Event()

    def waiting_in_a_named_function() -> None:
        release.wait(10)

    thread = threading.Thread(target=waiting_in_a_named_function, name="the-waiter")
    thread.start()
    try:
        text = thread_stacks()
    finally:
        release.set()
        thread.join()
    block = text.split("--- thread the-waiter", 1)[1].split("--- thread", 1)[0]
    assert "waiting_in_a_named_function" in block
    assert "--- thread MainThread" in text


def test_failpoint_specs_name_one_point_and_its_action() -> None:
    assert failpoints._parse("sink.after_insert=exit") == {"sink.after_insert": "exit"}
    assert failpoints._parse(" sink.after_insert = stall ") == {"sink.after_insert": "stall"}
    assert failpoints._parse("") == {}


def test_an_unarmed_failpoint_returns() -> None:
    assert failpoints.hit("no.such.point") is None


def test_dead_letter_headers_say_why_and_whence_with_a_bounded_reason() -> None:
    headers = dict(dead_letter_headers("x" * 5000, "sink", "t.outcomes", 3, 41))
    assert headers["disparo.reason"] == b"x" * MAX_REASON_CHARS
    assert headers["disparo.stage"] == b"sink"
    assert headers["disparo.source.topic"] == b"t.outcomes"
    assert headers["disparo.source.partition"] == b"3"
    assert headers["disparo.source.offset"] == b"41"
