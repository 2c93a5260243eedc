"""Metrics and alerts, read from the scenario's real Prometheus after real requests through the real stack.

Prometheus runs on the monitoring host (the acme container) and scrapes every
2 s (molecule.yml). Counts are read once the load has stopped and every
target has been scraped since. This module runs after the scenario's other
tests (pytest takes the files in name order): its rolling deploy leaves the
backends on a release of their own, which those tests do not expect.
"""

import time
import urllib.error
import urllib.request

import pytest

from conftest import SERVICE, LoadGenerator, address_of, inventory, run_playbook, wait_for
from tests.support.demo_release import demo_release
from tests.support.prometheus import Prometheus, increase_without_resets

testinfra_hosts = []

BACKENDS = ["app1", "app2"]
LOADBALANCERS = ["lb1", "lb2"]
# The requests the load generator sends, as the app and the load balancers count them.
APP_REQUESTS = 'sum(flask_app_requests_total{job="app", endpoint=~"service.hello|service.echo"})'
LB_REQUESTS = 'sum(nginx_lb_requests_total{job="nginx_log"})'
# The monitoring host's Prometheus: its `for` window and scrape interval, as molecule.yml sets them.
BACKEND_DOWN_FOR = 10
SCRAPE_INTERVAL = 2


@pytest.fixture(scope="module")
def prometheus():
    (monitor,) = inventory().get_hosts("monitoring")
    client = Prometheus(f"http://{address_of(monitor)}:9090")
    wait_for(lambda: all(target["health"] == "up" for target in client.targets()), timeout=90,
             what="every target up")
    return client


def counts_after(prometheus, moment):
    """The app's and the load balancers' request counts, once every target was scraped after MOMENT."""
    prometheus.wait_for_scrape_after(moment)
    return prometheus.total(APP_REQUESTS), prometheus.total(LB_REQUESTS)


def quiet_counts(prometheus):
    # mtail reads the access log a few times a second: its last lines are counted by now.
    time.sleep(1)
    return counts_after(prometheus, time.time())


def send_load(lb, requests=600):
    """N requests through lb1, each answered 200 by the app: N is what every count must rise by."""
    with LoadGenerator(lb, concurrency=4, rate=150, min_requests=requests, max_seconds=120) as load:
        time.sleep(requests / 150)
    assert load.errors == 0 and load.non_2xx == 0, load.summary()
    return load


def test_every_target_of_the_inventory_is_scraped_and_up(prometheus):
    up = {(labels["job"], labels.get("host")): value for labels, value in prometheus.query("up")}
    everyone = BACKENDS + LOADBALANCERS + inventory().get_hosts("monitoring")
    assert up == {**{("app", name): 1.0 for name in BACKENDS},
                  **{("nginx", name): 1.0 for name in LOADBALANCERS},
                  **{("nginx_log", name): 1.0 for name in LOADBALANCERS},
                  **{("node", name): 1.0 for name in everyone},
                  ("prometheus", None): 1.0}


def test_n_requests_raise_the_counts_by_n_at_the_load_balancers_and_at_the_backends(prometheus):
    app_before, lb_before = quiet_counts(prometheus)
    load = send_load(address_of("lb1"))
    app_after, lb_after = quiet_counts(prometheus)
    print(f"{load.total} requests sent: the backends counted {app_after - app_before:.0f}, "
          f"the load balancers {lb_after - lb_before:.0f}")
    assert (app_after - app_before, lb_after - lb_before) == (load.total, load.total), load.summary()
    # Every backend served its share, and both are counted.
    per_backend = prometheus.query(f'sum by (host) ({APP_REQUESTS.removeprefix("sum(").removesuffix(")")})')
    assert {labels["host"] for labels, value in per_backend if value > 0} == set(BACKENDS)


def test_the_workers_values_are_summed_into_one_series_per_label_set(prometheus):
    # prometheus_client's multiprocess files are per worker: a pid label would be one series per worker.
    series = prometheus.query('flask_app_requests_total{job="app"}')
    assert series and not [labels for labels, _ in series if "pid" in labels]
    keys = [tuple(sorted(labels.items())) for labels, _ in series]
    assert len(keys) == len(set(keys))


def test_counts_stay_exact_across_a_reload_of_every_backend(prometheus, backend_host):
    app_before, lb_before = quiet_counts(prometheus)
    since = time.time()
    with LoadGenerator(address_of("lb1"), concurrency=4, rate=150, min_requests=600, max_seconds=120) as load:
        time.sleep(1)
        for name in BACKENDS:
            backend_host(name).check_output(f"systemctl reload {SERVICE}")
        time.sleep(3)
    assert load.errors == 0 and load.non_2xx == 0, load.summary()
    app_after, lb_after = quiet_counts(prometheus)
    print(f"{load.total} requests sent across a reload of every backend: the backends counted "
          f"{app_after - app_before:.0f}, the load balancers {lb_after - lb_before:.0f}")
    assert (app_after - app_before, lb_after - lb_before) == (load.total, load.total), load.summary()
    # A HUP keeps the master and its counts: no reset at all.
    assert prometheus.total(f'sum(resets(flask_app_requests_total{{job="app"}}[{int(time.time() - since) + 1}s]))') == 0


def test_a_rolling_deploy_reads_as_resets_never_as_negative_or_double_counts(prometheus, tmp_path,
                                                                             scenario_hosts_file):
    source = demo_release(tmp_path, "\n# A release for the metrics' resets.\n")
    app_before, lb_before = quiet_counts(prometheus)
    since = time.time()
    with LoadGenerator(address_of("lb1"), concurrency=4, rate=100, min_requests=600, max_seconds=600) as load:
        returncode, output, _ = run_playbook("playbooks/rolling_update.yml", scenario_hosts_file,
                                             "-e", f"flask_app_source_dir={source}", check=False)
    assert returncode == 0, output[-4000:]
    assert load.errors == 0 and load.non_2xx == 0, load.summary()
    _, lb_after = quiet_counts(prometheus)
    until = time.time()
    # The load balancers were not restarted: their count is exact.
    assert lb_after - lb_before == load.total, load.summary()
    # Each backend restarted once: its series start again from zero, which Prometheus reads as a reset.
    baseline = {frozenset(labels.items()): value for labels, value in
                prometheus.query(APP_REQUESTS.removeprefix("sum(").removesuffix(")"), at=since)}
    counted, resets = 0.0, 0
    for labels, series in prometheus.samples(APP_REQUESTS.removeprefix("sum(").removesuffix(")"), since,
                                             until).items():
        added, reset = increase_without_resets([(since, baseline.get(labels, 0.0))] + series)
        counted, resets = counted + added, resets + reset
    print(f"{load.total} requests sent across a rolling deploy: the load balancers counted "
          f"{lb_after - lb_before:.0f}, the backends {counted:.0f} with {resets} resets")
    assert resets >= len(BACKENDS), "each backend restarted: its counts start again"
    increases = prometheus.query(f'increase(flask_app_requests_total{{job="app"}}[{int(until - since) + 1}s])')
    assert min(value for _, value in increases) >= 0
    # Never more than was sent (a series counted twice would be); the few requests a backend answered
    # between its last scrape and its restart are all that may be missing.
    assert load.total * 0.9 <= counted <= load.total, (counted, load.summary())


def test_a_stopped_backend_fires_backend_down_within_its_window_and_clears_when_back(prometheus, backend_host):
    host = backend_host("app2")
    assert not prometheus.firing("BackendDown")
    host.check_output(f"systemctl stop {SERVICE}")
    stopped = time.monotonic()
    try:
        wait_for(lambda: [alert["host"] for alert in prometheus.firing("BackendDown")] == ["app2"],
                 timeout=BACKEND_DOWN_FOR + 5 * SCRAPE_INTERVAL + 10, interval=0.5, what="BackendDown for app2")
        fired_after = time.monotonic() - stopped
    finally:
        host.check_output(f"systemctl start {SERVICE}")
    # Not before its `for` window, and within it plus a scrape, an evaluation and the test's own polling.
    print(f"BackendDown fired {fired_after:.1f} s after the stop (for: {BACKEND_DOWN_FOR} s)")
    assert BACKEND_DOWN_FOR <= fired_after <= BACKEND_DOWN_FOR + 4 * SCRAPE_INTERVAL + 2, fired_after
    wait_for(lambda: not prometheus.firing("BackendDown"), timeout=6 * SCRAPE_INTERVAL + 20, interval=0.5,
             what="BackendDown to clear")


def test_each_load_balancers_certificate_expiry_is_watched(prometheus):
    expiries = {labels["host"]: value for labels, value in
                prometheus.query("nginx_lb_certificate_expiry_timestamp_seconds")}
    assert set(expiries) == set(LOADBALANCERS)
    # pebble's certificates, not the placeholder the role serves until one is issued (two days).
    assert min(expiries.values()) > time.time() + 14 * 86400, expiries
    assert not prometheus.firing("CertificateExpiresSoon")


def get_status(url):
    # A dropped packet is not answered at all: 2 s is long on a network of containers on one machine.
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return "unreachable"


@pytest.mark.parametrize("path", ["/metrics", "/stub_status", "/metrics/nginx"])
def test_no_metric_endpoint_answers_through_the_public_listener(lb_url, path):
    assert get_status(f"{lb_url}{path}") == 404


@pytest.mark.parametrize(("host", "port", "refused_with"), [
    ("app1", 9101, 403),            # the app's metrics: the listener refuses other clients itself
    ("app1", 9100, "unreachable"),  # node exporter: systemd drops the packets of any other address
    ("lb1", 9100, "unreachable"),
    ("lb1", 9113, "unreachable"),   # nginx exporter
    ("lb1", 3903, "unreachable"),   # mtail
    ("lb1", 8081, "unreachable"),   # stub_status, on loopback only
])
def test_exporters_answer_the_monitoring_hosts_only(prometheus, host, port, refused_with):
    # This machine is no monitoring host; Prometheus, on the monitoring host, scrapes them all (the first test).
    assert get_status(f"http://{address_of(host)}:{port}/metrics") == refused_with
