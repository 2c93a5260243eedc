# -*- coding: utf-8 -*-
"""What the monitoring role renders, decided in Python: scrape targets from the inventory and alerting rules.

monitoring_scrape_configs turns the inventory's groups into Prometheus's
scrape_configs, one job per kind of exporter, every target by the address
the inventory gives its host. monitoring_alert_rules turns the alert inputs
into a Prometheus rule file. monitoring_input_errors names each bad input
and its value, for preflight, before anything changes. monitoring_allowed
lists who may read a host's exporters.
"""

from __future__ import annotations

import ipaddress
import json
import re

# A duration as Prometheus takes it: 30s, 5m, 1h30m, 15d...
DURATION = re.compile(r"([0-9]+(ms|s|m|h|d|w|y))+\Z")
# A size as Prometheus's --storage.tsdb.retention.size and journald take it.
SIZE = re.compile(r"[0-9]+(B|KB|MB|GB|TB|K|M|G|T)\Z")
# A host name or an IP address as a scrape target's host.
HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)\Z")
# The kinds of scrape jobs, by the port input each is scraped at.
JOBS = ("app", "node", "nginx", "nginx_log")


def target_host(host, hostvars):
    """The address Prometheus scrapes HOST at: monitoring_address, else ansible_host, else its inventory name."""
    variables = hostvars.get(host, {})
    address = str(variables.get("monitoring_address", variables.get("ansible_host", host)))
    if ":" in address and not address.startswith("["):
        return "[%s]" % address
    return address


def scrape_configs(groups, hostvars, inputs):
    """Prometheus's scrape_configs: the app on every backend, nginx and its log on every load balancer,
    the node exporter on every host of the fleet and of the monitoring group, and Prometheus itself.

    Each target carries the inventory name as its `host` label, so that alerts name the host as the inventory does.
    """
    backends = sorted(groups.get(inputs["monitoring_backend_group"], []))
    loadbalancers = sorted(groups.get(inputs["monitoring_loadbalancer_group"], []))
    monitors = sorted(groups.get(inputs["monitoring_group"], []))

    def job(name, hosts, port, path="/metrics"):
        return {
            "job_name": name,
            "metrics_path": path,
            "static_configs": [{"targets": ["%s:%d" % (target_host(host, hostvars), int(port))],
                                "labels": {"host": host}} for host in hosts],
        }

    jobs = [job("app", backends, inputs["monitoring_app_metrics_port"]),
            job("nginx", loadbalancers, inputs["monitoring_nginx_exporter_port"]),
            job("nginx_log", loadbalancers, inputs["monitoring_nginx_log_exporter_port"])]
    if inputs["monitoring_node_exporter"]:
        fleet = sorted(set(backends) | set(loadbalancers) | set(monitors))
        jobs.append(job("node", fleet, inputs["monitoring_node_exporter_port"]))
    listen_port = int(str(inputs["monitoring_listen_address"]).rpartition(":")[2])
    jobs.append({"job_name": "prometheus", "static_configs": [{"targets": ["localhost:%d" % listen_port]}]})
    return [entry for entry in jobs if entry.get("static_configs")]


def alert_rules(inputs):
    """The alerting rules as a Prometheus rule file (a dict to write as YAML)."""
    window = inputs["monitoring_alert_rate_window"]
    rules = [
        {
            "alert": "BackendDown",
            "expr": 'up{job="app"} == 0',
            "for": inputs["monitoring_alert_backend_down_for"],
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "Backend {{ $labels.host }} does not answer Prometheus",
                "description": "Its metrics (job app) have not been scraped for %s or more."
                % inputs["monitoring_alert_backend_down_for"],
            },
        },
        {
            "alert": "HighErrorRatio",
            "expr": ('sum by (host) (rate(nginx_lb_requests_total{status=~"5.."}[%s]))\n'
                     '  / sum by (host) (rate(nginx_lb_requests_total[%s])) > %s'
                     % (window, window, _number(inputs["monitoring_alert_error_ratio"]))),
            "for": inputs["monitoring_alert_error_ratio_for"],
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $labels.host }} answers 5xx to too many requests",
                "description": "More than %s of the load balancer's answers over %s were 5xx."
                % (_number(inputs["monitoring_alert_error_ratio"]), window),
            },
        },
        {
            "alert": "HighLatencyP99",
            "expr": ('histogram_quantile(0.99, sum by (host, le) (rate(flask_app_request_duration_seconds_bucket[%s])))'
                     ' > %s' % (window, _number(inputs["monitoring_alert_latency_p99_seconds"]))),
            "for": inputs["monitoring_alert_latency_for"],
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $labels.host }} answers too slowly",
                "description": "The 99th percentile of its request time over %s is above %s s."
                % (window, _number(inputs["monitoring_alert_latency_p99_seconds"])),
            },
        },
    ]
    if inputs["monitoring_alert_certificate"]:
        days = int(inputs["monitoring_alert_certificate_days"])
        rules.append({
            "alert": "CertificateExpiresSoon",
            "expr": "nginx_lb_certificate_expiry_timestamp_seconds - time() < %d * 86400" % days,
            "for": "5m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $labels.host }}'s certificate expires soon",
                "description": "Less than %d days left: its renewal is not working." % days,
            },
        })
    return {"groups": [{"name": "hello-fleet", "rules": rules}]}


def _number(value):
    return float(value) if isinstance(value, float) or "." in str(value) else int(value)


def allowed(monitoring_hosts, hostvars, extra):
    """Who may read a host's exporters: loopback, the monitoring hosts' IP addresses, and EXTRA's networks."""
    addresses = []
    for host in monitoring_hosts or []:
        address = str(hostvars.get(host, {}).get("monitoring_address",
                                                  hostvars.get(host, {}).get("ansible_host", host))).strip("[]")
        if _network(address) is not None:
            addresses.append(address)
    return ["localhost"] + sorted(set(addresses)) + [str(entry) for entry in extra or []]


def _network(value):
    if not isinstance(value, str) or re.search(r"\s", value):
        return None
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


def input_errors(inputs):
    """Every problem with the monitoring inputs that argument_specs cannot express, each naming the input and value."""
    errors = []

    def bad(name, expected):
        errors.append("%s must be %s, got %s" % (name, expected, json.dumps(inputs[name], default=str)))

    for name in ("monitoring_retention", "monitoring_scrape_interval", "monitoring_evaluation_interval",
                 "monitoring_alert_rate_window", "monitoring_alert_backend_down_for",
                 "monitoring_alert_error_ratio_for", "monitoring_alert_latency_for"):
        if not isinstance(inputs[name], str) or not DURATION.match(inputs[name]):
            bad(name, "a Prometheus duration such as 30s, 5m or 15d")
    if inputs["monitoring_retention_size"] not in ("", None) and not SIZE.match(str(inputs["monitoring_retention_size"])):
        bad("monitoring_retention_size", 'a size such as 512MB or 10GB, or "" for none')
    if not SIZE.match(str(inputs["monitoring_journal_max_use"])):
        bad("monitoring_journal_max_use", "a size such as 200M or 1G")
    address = str(inputs["monitoring_listen_address"])
    host, _, port = address.rpartition(":")
    if not (host and HOST.match(host) and port.isdigit() and 0 < int(port) < 65536):
        bad("monitoring_listen_address", "HOST:PORT (IPv6 in brackets), such as 0.0.0.0:9090")
    for name in ("monitoring_app_metrics_port", "monitoring_node_exporter_port", "monitoring_nginx_exporter_port",
                 "monitoring_nginx_log_exporter_port", "monitoring_stub_status_port"):
        value = inputs[name]
        if isinstance(value, bool) or not str(value).isdigit() or not 0 < int(value) < 65536:
            bad(name, "a port within 1-65535")
    for name, low, high in (("monitoring_alert_error_ratio", 0, 1), ("monitoring_alert_latency_p99_seconds", 0, None)):
        try:
            number = float(inputs[name])
        except (TypeError, ValueError):
            number = None
        if isinstance(inputs[name], bool) or number is None or number <= low or (high is not None and number > high):
            bad(name, "a number above %s%s" % (low, " and at most %s" % high if high is not None else ""))
    days = inputs["monitoring_alert_certificate_days"]
    if isinstance(days, bool) or not str(days).isdigit() or int(days) < 1:
        bad("monitoring_alert_certificate_days", "a whole number of days, 1 or more")
    extra = inputs["monitoring_allow"]
    if not isinstance(extra, list) or any(_network(entry) is None for entry in extra):
        bad("monitoring_allow", "a list of IP addresses or networks (10.0.0.5, 10.0.0.0/24)")
    for entry in ("monitoring_nginx_access_log",):
        if not re.match(r"(/[A-Za-z0-9_.*+-]+)+\Z", str(inputs[entry])):
            bad(entry, "an absolute path (glob) of letters, digits and _.*+-")
    return errors


def host_errors(hosts, hostvars):
    """Targets whose address would break the scrape configuration: each names the host and its address."""
    errors = []
    for host in hosts:
        address = target_host(host, hostvars)
        if not HOST.match(address):
            errors.append("%s: monitoring_address (or ansible_host) must be a host name or an IP address, got %s"
                          % (host, json.dumps(address)))
    return errors


def exporter_files(exporters):
    """Where each exporter's files go, by service: its settings (the EnvironmentFile of Debian's unit), its
    unit's drop-in directory, and the drop-in in it that lets only the monitoring hosts in."""
    files = {}
    for exporter in exporters or []:
        service = exporter["service"]
        dropins = "/etc/systemd/system/%s.service.d" % service
        files[service] = {"settings": "/etc/default/%s" % service, "dropins": dropins,
                          "allow": "%s/monitoring-allow.conf" % dropins}
    return files


class FilterModule(object):
    def filters(self):
        return {
            "monitoring_scrape_configs": scrape_configs,
            "monitoring_alert_rules": alert_rules,
            "monitoring_allowed": allowed,
            "monitoring_input_errors": input_errors,
            "monitoring_host_errors": host_errors,
            "monitoring_exporter_files": exporter_files,
        }
