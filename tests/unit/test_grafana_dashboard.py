"""The Grafana dashboard is valid JSON whose panels query only metrics that exist."""

import json
import re
from pathlib import Path

from tests.metric_names import exported_metric_names

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "disparo.json"
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"


def test_every_panel_queries_existing_metrics_or_recorded_series() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(dashboard["panels"]) >= 10
    used = {m for e in exprs for m in re.findall(r"\b(disparo_[a-z0-9_]+)", e)}
    assert used <= exported_metric_names(), used - exported_metric_names()
    recorded = set(re.findall(r"record: (disparo:[a-z0-9_:]+)", RULES.read_text()))
    used_recorded = {m for e in exprs for m in re.findall(r"(disparo:[a-z0-9_:]+)", e)}
    assert used_recorded <= recorded, used_recorded - recorded


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells = set()
    for p in panels:
        g = p["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, p["title"]
                cells.add((x, y))
