"""The analytics process: outcomes sink and management API over one store (chdb owns its path)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable

import uvicorn

from analytics.api.app import create_app
from analytics.api.deps import Services
from analytics.settings import AnalyticsSettings
from analytics.sink import OutcomeSink
from analytics.store import ensure_schema, open_store
from disparo.kafka import make_producer
from disparo.rules_view import RulesView
from disparo.topics import Topics
from producers.publish import Publisher

log = logging.getLogger(__name__)


def run(settings: AnalyticsSettings) -> None:
    """Run the sink in a thread and the API in the foreground until SIGTERM/SIGINT."""
    store = open_store(settings.clickhouse_url, settings.chdb_path)
    ensure_schema(store)
    producer = make_producer(settings, client_id="disparo-analytics")
    rules = RulesView(settings)
    rules.start()
    sink = OutcomeSink(settings, store, producer)
    sink_thread = threading.Thread(target=_guarded(sink.run), name="sink", daemon=True)
    sink_thread.start()
    svc = Services(
        store=store,
        rules=rules,
        producer=producer,
        topics=Topics(settings.topic_prefix),
        ready=lambda: sink_thread.is_alive() and sink.consuming(),
    )
    app = create_app(svc, Publisher(settings, producer))
    log.info("management API on http://%s:%d/", settings.api_host, settings.api_port)
    try:
        uvicorn.run(
            app,
            host=settings.api_host,
            port=settings.api_port,
            log_level=settings.log_level.lower(),
            access_log=False,
        )
    finally:
        sink.stop()
        sink_thread.join(timeout=30)
        rules.stop()
        producer.close(10)
        store.close()


def _guarded(target: Callable[[], None]) -> Callable[[], None]:
    """Run a thread's target; if it dies, stop the whole process so it gets restarted."""

    def runner() -> None:
        try:
            target()
        except Exception:
            log.exception("the outcomes sink stopped on an error; exiting so it can restart")
            os.kill(os.getpid(), signal.SIGTERM)

    return runner
