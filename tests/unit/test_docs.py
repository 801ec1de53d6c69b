"""The README documents exactly the settings the services read."""

import re
from pathlib import Path

from analytics.settings import AnalyticsSettings
from consumers.settings import WorkerSettings
from dispatcher.settings import DispatcherSettings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_settings_table_matches_the_settings_classes() -> None:
    documented = set(re.findall(r"^\| `(DISPARO_[A-Z0-9_]+)` \|", README.read_text(), re.M))
    fields = set()
    for cls in (AnalyticsSettings, DispatcherSettings, WorkerSettings):
        fields |= {f"DISPARO_{name.upper()}" for name in cls.model_fields}
    assert documented == fields
