"""The dispatcher's faust app: every session timeout the settings accept, a short fetch wait."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from disparo.parking import ParkedEndpoints
from disparo.rules_view import RulesView
from disparo.secret_box import SecretBox, new_key_text
from dispatcher.app import create_app
from dispatcher.settings import DispatcherSettings
from dispatcher.transport import FETCH_MAX_WAIT_MS


@pytest.mark.parametrize("session_s", [1.0, 90.0])
def test_the_session_timeout_reaches_faust_within_its_request_timeout(
    session_s: float, tmp_path: Path
) -> None:
    settings = DispatcherSettings(kafka_session_timeout_s=session_s, home=tmp_path)
    rules = RulesView(settings, SecretBox(new_key_text()))
    app = create_app(settings, rules, ParkedEndpoints(settings))
    assert app.conf.broker_session_timeout == session_s
    assert app.conf.broker_heartbeat_interval == pytest.approx(session_s / 3)
    # faust refuses to build its consumer when the session outlasts a request.
    assert app.conf.broker_session_timeout <= app.conf.broker_request_timeout


def test_the_event_consumer_waits_at_most_the_short_fetch_wait(tmp_path: Path) -> None:
    settings = DispatcherSettings(home=tmp_path)
    app = create_app(
        settings, RulesView(settings, SecretBox(new_key_text())), ParkedEndpoints(settings)
    )

    async def built() -> int:  # aiokafka builds its consumer on a running loop; not started
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        return int(consumer._fetch_max_wait_ms)

    # faust writes 1500 ms into its driver; a fetch of idle partitions would hold events that long.
    assert asyncio.run(built()) == FETCH_MAX_WAIT_MS == 50
