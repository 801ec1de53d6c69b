"""A real Prometheus scrapes the running worker; its recorded failure ratio matches reality."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy.local.broker import REPO_ROOT, free_port
from deploy.local.processes import ProcessTable
from tests.integration.conftest import Stack, eventually, order_event
from tests.integration.receiver import Receiver

pytestmark = pytest.mark.integration
RULES = REPO_ROOT / "deploy" / "prometheus" / "rules.yml"


@pytest.fixture
def prometheus(stack: Stack, tmp_path: Path) -> Iterator[str]:
    """Debian's Prometheus server scraping this test's worker every second."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus missing: run `make test` (it installs Debian's package)"
    port = free_port()
    # The shipped rules as they are, evaluated every second instead of their group's 30 s.
    rules = tmp_path / "rules.yml"
    shipped = RULES.read_text()
    assert shipped.count("interval: 30s") == 1
    rules.write_text(shipped.replace("interval: 30s", "interval: 1s"))
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{rules}']\n"
        "scrape_configs:\n"
        "  - job_name: disparo-worker\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{stack.env['DISPARO_WORKER_PORT']}']}}]\n"
    )
    table = ProcessTable(tmp_path / "prom-run")
    table.start(
        "prometheus",
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        {"PATH": "/usr/bin:/bin"},
    )
    try:
        table.wait_http("prometheus", f"http://127.0.0.1:{port}/-/ready", 60)
        yield f"http://127.0.0.1:{port}"
    finally:
        table.stop("prometheus", grace_s=10)


def _instant(prometheus: str, query: str) -> float | None:
    body = httpx.get(f"{prometheus}/api/v1/query", params={"query": query}, timeout=10).json()
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_prometheus_records_the_failure_ratio_of_what_was_sent(
    stack: Stack, receiver: Receiver, prometheus: str
) -> None:
    ok = stack.active_rule(name="ok", event_types=["order.dispatched"], url=f"{receiver.url}/ok")
    bad = stack.create_rule(
        name="bad", event_types=["tracking.updated"], url=f"{receiver.url}/fail", max_attempts=1
    )
    stack.wait_rule_applied(bad["id"], active=True)
    # The worker's zeroed series must be scraped before the first delivery.
    eventually(
        lambda: _instant(prometheus, "sum(disparo_deliveries_total)") == 0,
        30,
        "a first scrape of the idle worker",
    )
    stack.publisher.publish_many(
        [order_event(f"P-{i}") for i in range(30)]
        + [order_event(f"P-{i}", "tracking.updated") for i in range(10)]
    )
    receiver.wait_for("/ok", 30)
    receiver.wait_for("/fail", 10)

    def recorded() -> float | None:
        value = _instant(prometheus, "disparo:delivery_failure_ratio:rate5m")
        total = _instant(prometheus, "sum(disparo_deliveries_total)")
        return value if total == 40 else None

    ratio = eventually(recorded, 90, "the recording rule to see all 40 attempts")
    assert ratio == pytest.approx(0.25, abs=0.001)
    # A rule's series start at its first delivery, so check them as raw counts.
    failed = f'disparo_rule_deliveries_total{{rule_id="{bad["id"]}",outcome="failure"}}'
    passed = f'disparo_rule_deliveries_total{{rule_id="{ok["id"]}",outcome="success"}}'
    assert _instant(prometheus, failed) == 10
    assert _instant(prometheus, passed) == 30
