"""The alerting rules the monitoring role renders, checked and unit-tested with Prometheus's own promtool.

promtool comes from Debian's prometheus package (scripts/ensure-promtool
fetches it for make test); without it these tests fail rather than skip.
"""

import pathlib
import shutil
import subprocess

import pytest
import yaml

from monitoring_config import alert_rules

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULTS = ROOT / "roles" / "monitoring" / "defaults" / "main.yml"
RULE_TESTS = pathlib.Path(__file__).resolve().parent / "promtool" / "fleet_rules_test.yml"


@pytest.fixture(scope="module")
def promtool():
    found = subprocess.run([str(ROOT / "scripts" / "ensure-promtool")], capture_output=True, text=True, check=False)
    assert found.returncode == 0, f"promtool is needed: {found.stderr}"
    return found.stdout.strip().splitlines()[-1]


def defaults():
    return yaml.safe_load(DEFAULTS.read_text(encoding="utf-8"))


def render(directory, **inputs):
    path = directory / "fleet.rules.yml"
    path.write_text(yaml.safe_dump(alert_rules(dict(defaults(), **inputs)), sort_keys=False), encoding="utf-8")
    return path


def test_the_default_rules_pass_promtool_check(promtool, tmp_path):
    checked = subprocess.run([promtool, "check", "rules", str(render(tmp_path))], capture_output=True, text=True,
                             check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 4 rules found" in checked.stdout


def test_the_default_rules_fire_and_stay_silent_as_their_unit_tests_say(promtool, tmp_path):
    render(tmp_path)
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    tested = subprocess.run([promtool, "test", "rules", RULE_TESTS.name], cwd=tmp_path, capture_output=True,
                            text=True, check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_a_wrong_threshold_fails_the_unit_tests(promtool, tmp_path):
    # The unit tests can fail: with the error ratio's threshold above 10%, lb1's 10% no longer fires.
    render(tmp_path, monitoring_alert_error_ratio=0.2)
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    tested = subprocess.run([promtool, "test", "rules", RULE_TESTS.name], cwd=tmp_path, capture_output=True,
                            text=True, check=False)
    assert tested.returncode != 0
    assert "HighErrorRatio" in tested.stdout + tested.stderr


def test_without_https_the_certificate_rule_is_left_out(tmp_path):
    rules = alert_rules(dict(defaults(), monitoring_alert_certificate=False))["groups"][0]["rules"]
    assert [rule["alert"] for rule in rules] == ["BackendDown", "HighErrorRatio", "HighLatencyP99"]
