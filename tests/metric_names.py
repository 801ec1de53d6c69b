"""The names of every metric the services export, as Prometheus sees them."""

from prometheus_client import REGISTRY

import analytics.control.duties
import analytics.control.held_keeper
import analytics.control.resends
import analytics.control.sla_watch
import analytics.control.warden
import analytics.history.sink
import consumers.metrics
import disparo.lag
import dispatcher.metrics

SERVICE_METRIC_MODULES = (
    analytics.control.duties,
    analytics.control.held_keeper,
    analytics.control.sla_watch,
    analytics.history.sink,
    analytics.control.warden,
    consumers.metrics,
    dispatcher.metrics,
    disparo.lag,
)
_SUFFIXES = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}


def exported_metric_names() -> set[str]:
    """Sample names of the metrics registered by importing the services' metric modules."""
    names = set()
    for family in REGISTRY.collect():
        names |= {family.name + s for s in _SUFFIXES.get(family.type, [""])}
    return names
