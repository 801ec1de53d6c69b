"""The Prometheus rules are valid, pass their promtool unit tests, and name real metrics."""

import re
import shutil
import subprocess
from pathlib import Path

from tests.metric_names import exported_metric_names

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
TESTS = ROOT / "tests" / "prometheus" / "rules_test.yml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool missing: run `make test` (it installs Debian's prometheus package)"
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=60, check=False, cwd=TESTS.parent
    )


def test_rules_pass_promtool_check() -> None:
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 18 rules found" in done.stdout


def test_rules_pass_their_promtool_unit_tests() -> None:
    done = promtool("test", "rules", TESTS.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_rules_refer_only_to_metrics_the_services_export() -> None:
    exported = exported_metric_names()
    used = set(re.findall(r"\b(disparo_[a-z0-9_]+)", RULES.read_text()))
    assert used
    assert used <= exported, used - exported
