from consumers import classify
from consumers.endpoints import CLOSED, HALF_OPEN, OPEN, Breaker, EndpointGuard
from disparo.parking import endpoint_key, endpoint_of, host_of


def test_endpoint_key_is_host_and_port() -> None:
    assert endpoint_of("https://Hooks.Example.com/a?b") == "hooks.example.com:443"
    assert endpoint_of("http://127.0.0.1:8090/ok") == "127.0.0.1:8090"
    assert endpoint_of("http://example.com/x") == "example.com:80"


def test_breaker_opens_after_consecutive_failures_and_probes_once_after_the_wait() -> None:
    b = Breaker(threshold=3, open_s=10)
    for t in range(3):
        assert b.allow(t)
        b.record(False, t)
    assert b.state == OPEN
    assert not b.allow(5)
    assert b.allow(12)  # the probe
    assert b.state == HALF_OPEN
    assert not b.allow(12.1)  # only one probe at a time
    b.record(False, 13)
    assert b.state == OPEN
    assert not b.allow(20)
    assert b.allow(23.5)
    b.record(True, 24)
    assert b.state == CLOSED
    assert b.allow(24)


def test_a_success_resets_the_failure_count() -> None:
    b = Breaker(threshold=3)
    b.record(False, 0)
    b.record(False, 1)
    b.record(True, 2)
    b.record(False, 3)
    b.record(False, 4)
    assert b.state == CLOSED


def test_guard_counts_only_unhealthy_reasons_and_says_when_to_come_back() -> None:
    now = [0.0]
    guard = EndpointGuard(threshold=2, open_s=30, clock=lambda: now[0])
    guard.record("h:80", classify.HTTP_4XX)
    guard.record("h:80", classify.HTTP_4XX)
    assert guard.admit("h:80") is None
    guard.record("h:80", classify.TIMEOUT)
    guard.record("h:80", classify.HTTP_5XX)
    assert guard.admit("h:80") == 30
    assert guard.admit("other:80") is None
    now[0] = 31
    assert guard.admit("h:80") is None


def test_each_endpoint_has_its_own_concurrency_slot() -> None:
    guard = EndpointGuard(per_endpoint=2)
    assert guard.slot("a:80") is guard.slot("a:80")
    assert guard.slot("a:80") is not guard.slot("b:80")


def test_fast_4xx_answers_mixed_in_neither_count_nor_reset() -> None:
    now = [0.0]
    guard = EndpointGuard(threshold=3, open_s=30, clock=lambda: now[0])
    for reason in (classify.TIMEOUT, classify.HTTP_4XX, classify.HTTP_5XX, classify.HTTP_4XX):
        guard.record("h:80", reason)
        now[0] += 1
    assert guard.admit("h:80") is None
    guard.record("h:80", classify.TIMEOUT)
    assert guard.admit("h:80") is not None


def test_failures_older_than_the_window_are_forgotten() -> None:
    b = Breaker(threshold=3, window_s=60)
    b.record(False, 0)
    b.record(False, 50)
    b.record(False, 100)  # the one at 0 has left the window
    assert b.state == CLOSED
    b.record(False, 101)
    assert b.state == OPEN


def test_a_probe_answered_with_a_4xx_closes_the_circuit() -> None:
    b = Breaker(threshold=1, open_s=10)
    b.record(False, 0)
    assert b.allow(11)
    b.record(None, 11)
    assert b.state == CLOSED


def test_an_answer_slower_than_half_its_timeout_counts_against_the_endpoint() -> None:
    guard = EndpointGuard(threshold=2, clock=lambda: 0.0)
    assert guard.record("acme/h:80", classify.SUCCESS, slow=True) is False
    assert guard.record("acme/h:80", classify.SUCCESS, slow=True) is False
    assert guard.admit("acme/h:80") is not None  # opened by slow successes
    assert guard.admit("globex/h:80") is None  # another account on that host: its own breaker
    assert (guard.circuits("open"), guard.circuits("closed")) == (1, 1)


def test_endpoints_are_per_account_under_a_host_cap_and_an_account_share() -> None:
    guard = EndpointGuard(per_endpoint=2, per_host=3, per_account=4)
    assert guard.slot("acme/h:80") is not guard.slot("globex/h:80")
    assert guard.host_slot("h:80") is guard.host_slot("h:80")
    assert guard.host_slot("h:80")._value == 3
    assert guard.account_slot("acme")._value == 4
    assert endpoint_key("acme", "https://H.example/x") == "acme/h.example:443"
    assert host_of(endpoint_key("acme", "https://H.example/x")) == "h.example:443"
