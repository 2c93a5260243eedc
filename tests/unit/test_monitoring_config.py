"""The monitoring role's decisions: scrape targets from the inventory, who may reach the exporters, bad inputs."""

import json
import pathlib

import pytest
import yaml

from monitoring_config import FilterModule, allowed, exporter_files, host_errors, input_errors, scrape_configs

DEFAULTS = yaml.safe_load((pathlib.Path(__file__).resolve().parents[2] / "roles" / "monitoring" / "defaults"
                           / "main.yml").read_text(encoding="utf-8"))
GROUPS = {"backends": ["app2", "app1"], "loadbalancers": ["lb1"], "monitoring": ["mon1"]}
HOSTVARS = {"app1": {"ansible_host": "10.0.0.11"}, "app2": {"ansible_host": "2001:db8::12"}, "lb1": {},
            "mon1": {"ansible_host": "10.0.0.9"}}


def targets(configs):
    return {config["job_name"]: [(entry["targets"][0], entry.get("labels", {}).get("host"))
                                 for entry in config["static_configs"]] for config in configs}


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"monitoring_scrape_configs", "monitoring_alert_rules", "monitoring_allowed",
                                             "monitoring_input_errors", "monitoring_host_errors",
                                             "monitoring_exporter_files"}


def test_every_backend_and_load_balancer_is_a_target_by_its_inventory_address():
    assert targets(scrape_configs(GROUPS, HOSTVARS, DEFAULTS)) == {
        "app": [("10.0.0.11:9101", "app1"), ("[2001:db8::12]:9101", "app2")],
        "nginx": [("lb1:9113", "lb1")],
        "nginx_log": [("lb1:3903", "lb1")],
        "node": [("10.0.0.11:9100", "app1"), ("[2001:db8::12]:9100", "app2"), ("lb1:9100", "lb1"),
                 ("10.0.0.9:9100", "mon1")],
        "prometheus": [("localhost:9090", None)],
    }


def test_a_backend_added_to_the_inventory_is_a_target():
    groups = dict(GROUPS, backends=GROUPS["backends"] + ["app3"])
    hostvars = dict(HOSTVARS, app3={"ansible_host": "10.0.0.13", "monitoring_address": "192.0.2.13"})
    assert ("192.0.2.13:9101", "app3") in targets(scrape_configs(groups, hostvars, DEFAULTS))["app"]


def test_without_the_node_exporter_there_is_no_node_job():
    assert "node" not in targets(scrape_configs(GROUPS, HOSTVARS, dict(DEFAULTS, monitoring_node_exporter=False)))


def test_only_loopback_the_monitoring_hosts_and_the_networks_allowed_reach_the_exporters():
    assert allowed(["mon1", "lb1"], HOSTVARS, ["192.0.2.0/24"]) == ["localhost", "10.0.0.9", "192.0.2.0/24"]


def test_the_defaults_pass():
    assert input_errors(DEFAULTS) == []


@pytest.mark.parametrize(("variable", "bad_value"), [
    ("monitoring_retention", "15 days"),
    ("monitoring_retention_size", "lots"),
    ("monitoring_scrape_interval", "15"),
    ("monitoring_listen_address", "9090"),
    ("monitoring_listen_address", "0.0.0.0:99999"),
    ("monitoring_app_metrics_port", 0),
    ("monitoring_node_exporter_port", "x"),
    ("monitoring_alert_error_ratio", 1.5),
    ("monitoring_alert_error_ratio", "many"),
    ("monitoring_alert_latency_p99_seconds", 0),
    ("monitoring_alert_backend_down_for", "1 minute"),
    ("monitoring_alert_certificate_days", 0),
    ("monitoring_allow", ["10.0.0.0/8", "monitor.example"]),
    ("monitoring_journal_max_use", "200 MB"),
    ("monitoring_nginx_access_log", "/var/log/nginx/a b.log"),
])
def test_a_bad_input_is_named_with_its_value(variable, bad_value):
    [error] = input_errors(dict(DEFAULTS, **{variable: bad_value}))
    assert error.startswith(variable + " must be")
    assert error.endswith("got " + json.dumps(bad_value))


def test_a_target_address_that_would_break_the_configuration_names_the_host():
    [error] = host_errors(["app1", "app2"], {"app1": {"ansible_host": "10.0.0.11"},
                                             "app2": {"ansible_host": "app2'; drop"}})
    assert error.startswith("app2: ") and json.dumps("app2'; drop") in error


def test_each_exporters_files_are_named_after_its_service():
    assert exporter_files([{"service": "mtail", "package": "mtail"}]) == {"mtail": {
        "settings": "/etc/default/mtail",
        "dropins": "/etc/systemd/system/mtail.service.d",
        "allow": "/etc/systemd/system/mtail.service.d/monitoring-allow.conf"}}
    assert exporter_files([]) == {}
