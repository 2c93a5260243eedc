"""Maintenance mode: the public gets the JSON 503, the team and the monitors do not.

Runs last (file order): greeter-api serves on app1 and app2, and stays on
version 2 after the rollout run here.
The scenario's inventory lets 127.0.0.1 through maintenance and 127.0.0.2
reach the health path (/ping); their requests are sent from inside lb1. The
public's come from this machine. The tests build on each other; the last one
turns maintenance off, and so does the module's teardown when a test failed
before it, so that the scenario ends with the site serving.
"""

import json
import shlex

import pytest

from conftest import LoadGenerator, address_of, inventory, request, rotation, run_playbook

testinfra_hosts = []

BACKENDS = ["app1", "app2"]
STATE_FILE = "/etc/nginx/conf.d/hello-service.maintenance"
TEAM, MONITOR = "127.0.0.1", "127.0.0.2"
# The scenario's nginx_lb_maintenance_retry_after is the role's default.
RETRY_AFTER = "300"


def greeting(body):
    return body.get("greeting") == "Hello from greeter"


def lb():
    return inventory().get_host("lb1")


def maintenance_state():
    return lb().file(STATE_FILE).content_string


def audit_trail(name):
    text = inventory().get_host(name).run("cat /var/lib/hello-fleet/audit.jsonl").stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def maintenance_on():
    return "\ndefault 1;\n" in maintenance_state()


@pytest.fixture(scope="module")
def hosts_file(scenario_hosts_file):
    yield scenario_hosts_file
    if maintenance_on():
        run_playbook("playbooks/maintenance.yml", scenario_hosts_file, "-e", "maintenance=off")


@pytest.fixture(scope="module")
def lb_address():
    return address_of("lb1")


def maintenance(hosts_file, *args, check=True):
    return run_playbook("playbooks/maintenance.yml", hosts_file, *args, check=check)


def from_lb(path, source):
    """GET PATH from inside lb1, sent from the loopback address SOURCE: (status, Retry-After, decoded body)."""
    script = ("import http.client, json;"
              f"c = http.client.HTTPConnection('127.0.0.1', 80, timeout=10, source_address=({source!r}, 0));"
              f"c.request('GET', {path!r}); a = c.getresponse();"
              "print(json.dumps([a.status, a.getheader('Retry-After'), json.loads(a.read())]))")
    return tuple(json.loads(lb().check_output(f"python3 -c {shlex.quote(script)}")))


def public_load(lb_address):
    """A few seconds of the public's requests, paced as in the deploy tests."""
    return LoadGenerator(lb_address, concurrency=4, min_requests=300, path="/hello", echo=False, expected=greeting)


def test_a_state_other_than_on_or_off_is_refused_before_anything_changes(hosts_file):
    before = maintenance_state()
    returncode, output, _ = maintenance(hosts_file, "-e", "maintenance=maybe", check=False)
    assert returncode != 0
    assert 'nginx_lb_maintenance (-e maintenance=on|off) must be on or off, got "maybe"' in " ".join(output.split()), \
        output[-3000:]
    assert maintenance_state() == before and not maintenance_on()


def test_check_mode_shows_the_change_and_makes_none(hosts_file):
    _, output, recap = maintenance(hosts_file, "--check", "--diff", "-e", "maintenance=on")
    assert recap["lb1"]["changed"] > 0, recap
    assert "-default 0;" in output and "+default 1;" in output, output[-3000:]
    assert not maintenance_on()


def test_turning_it_on_changes_the_load_balancers_once(hosts_file):
    app_trail = audit_trail("app1")
    _, _, recap = maintenance(hosts_file, "-e", "maintenance=on")
    assert recap["lb1"]["changed"] > 0 and all(recap[name]["changed"] == 0 for name in BACKENDS), recap
    assert maintenance_on()
    # Recorded where it changed something: on the load balancers only.
    last = audit_trail("lb1")[-1]
    assert (last["operation"], last["outcome"], last["hosts"], last["release"]) == (
        "maintenance", "succeeded", ["lb1"], ""), last
    assert audit_trail("app1") == app_trail
    _, _, recap = maintenance(hosts_file, "-e", "maintenance=on")
    assert all(counts["changed"] == 0 for counts in recap.values()), recap


def test_the_public_gets_only_the_json_503_with_retry_after_under_load(lb_address):
    with public_load(lb_address) as load:
        pass
    print(f"public load in maintenance: {load.total} requests in {load.elapsed:.1f}s, by status: {dict(load.statuses)}")
    assert load.errors == 0 and load.statuses == {503: load.total} and load.total >= 300, load.summary()
    assert all('"status":503' in sample for sample in load.samples), load.samples
    answer = request(f"http://{lb_address}/hello")
    assert (answer.status, answer.headers["Retry-After"]) == (503, RETRY_AFTER)
    assert answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    assert (body["error"], body["status"]) == ("service unavailable", 503) and body["request_id"]


def test_an_allowed_client_reaches_the_app():
    status, _, body = from_lb("/hello", TEAM)
    assert status == 200 and greeting(body), body


def test_the_monitor_reaches_the_health_path_and_only_it():
    assert from_lb("/ping", MONITOR) == (200, None, {"ok": True})
    status, retry_after, _ = from_lb("/hello", MONITOR)
    assert (status, retry_after) == (503, RETRY_AFTER)


def test_a_rollout_s_drain_and_undrain_leave_maintenance_on(lb_address):
    before = maintenance_state()
    rotation("lb1", state="drained", backends=["app1"])
    try:
        assert from_lb("/hello", TEAM)[0] == 200
        assert request(f"http://{lb_address}/hello").status == 503
    finally:
        rotation("lb1", state="in_rotation", backends=["app1"])
    assert maintenance_state() == before and maintenance_on()
    assert request(f"http://{lb_address}/hello").status == 503


def current_release(name):
    return inventory().get_host(name).file("/opt/greeter/current").linked_to.rsplit("/", 1)[1]


def test_a_rollout_runs_during_maintenance_and_site_yml_keeps_it_on(hosts_file, lb_address):
    # A real rollout, each backend drained, switched, checked and undrained, as in every deploy: back to
    # the previous release (test_anyapp.py's version 2). Then site.yml for the load balancers, whose role
    # writes the site that holds the state (a full site.yml adds a rollout like the one above).
    deployed = {name: current_release(name) for name in BACKENDS}
    run_playbook("playbooks/rollback.yml", hosts_file)
    assert all(current_release(name) != deployed[name] for name in BACKENDS)
    assert maintenance_on()
    status, _, body = from_lb("/hello", TEAM)
    assert status == 200 and body["version"] == 2, body
    assert request(f"http://{lb_address}/hello").status == 503
    _, _, recap = run_playbook("site.yml", hosts_file, "--limit", "loadbalancers")
    assert recap["lb1"]["changed"] == 0, recap
    assert maintenance_on()
    assert request(f"http://{lb_address}/hello").status == 503


def test_turning_it_off_serves_everyone_under_load(hosts_file, lb_address):
    maintenance(hosts_file, "-e", "maintenance=off")
    assert not maintenance_on()
    with public_load(lb_address) as load:
        pass
    print(f"public load after maintenance: {load.summary()}")
    assert load.errors == 0 and load.non_2xx == 0 and load.total >= 300, load.summary()
