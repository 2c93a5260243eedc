"""Deploys and rollbacks under load drop no request.

The tests run in file order and build on each other: release R1 is what
converge deployed, R2 a changed release, R3 a broken one.
"""

import contextlib
import datetime
import json
import re
import time

import pytest

from conftest import (EXPECTED_BODY, SERVICE, LoadGenerator, address_of, connection_header, drained_endpoints, gunicorn_pids,
                      healthz, inventory, listening_sockets, nginx_reloads, rotation, run_playbook, upstream_lines, upstream_peers,
                      upstream_servers, request, wait_for, write_inventory)

from tests.support.demo_release import demo_release
from tests.support.traffic import KINDS, Traffic

testinfra_hosts = []

BACKENDS = ["app1", "app2", "app3"]
LB_VARS = {"loadbalancers": {"nginx_lb_expose_upstream": True}}
state = {}


@pytest.fixture(scope="module")
def hosts_file(tmp_path_factory):
    return write_inventory(tmp_path_factory.mktemp("inventory") / "hosts.yml",
                           {"loadbalancers": ["lb1"], "backends": BACKENDS}, LB_VARS)


@pytest.fixture(scope="module")
def lb_address():
    return address_of("lb1")


def host(name):
    return inventory().get_host(name)


def current_release(name):
    return host(name).file(f"/opt/{SERVICE}/current").linked_to.rsplit("/", 1)[1]


def settings(name):
    return host(name).file(f"/etc/{SERVICE}/settings.env").content_string


def serving_release(name):
    return healthz(host(name))["release"]


def started_at(name):
    return host(name).check_output(f"systemctl show -p ActiveEnterTimestampMonotonic --value {SERVICE}")


# The changes that make R2 and R4. A release's id is its content's hash: the same change gives the same
# release, which the hosts keep installed (flask_app_releases_keep). A test that needs a release other than
# the one running takes one of these, and installs nothing.
R2_CHANGE = "\n# A change that makes a new release.\n"
R4_CHANGE = "\n# A release for two at a time.\n"


SWITCH_PLAY = "PLAY [Switch backends in batches, out of rotation]"


def batch_hosts(play_output):
    """The backends that tasks ran for in one batch's play output ("ok: [app1 -> lb1]" counts as app1), up to
    the next play (the load balancers', the lock's release)."""
    own = play_output.split("\nPLAY ", 1)[0]
    return set(re.findall(r"^(?:ok|changed|skipping|fatal|failed): \[(app\d+)[\] ]", own, re.MULTILINE))


def deploy_under_load(playbook, hosts_file, lb_address, *args, expect_success=True, max_reloads=None,
                      clients=False):
    """PLAYBOOK under the paced load, and with `clients` the unpaced kept-alive and new-connection clients
    too (tests/support/traffic.py). Each nginx reload closes the clients' idle kept-alive connections: a
    rollout makes at most `max_reloads`."""
    since = time.time()
    with LoadGenerator(lb_address, concurrency=8, min_requests=2000) as load, \
            (Traffic(f"{lb_address}:80", EXPECTED_BODY, clients_per_kind=1) if clients else contextlib.nullcontext()) \
            as traffic:
        returncode, output, recap = run_playbook(playbook, hosts_file, *args, check=False)
    reloads = nginx_reloads(host("lb1"), since)
    print(f"{playbook} {' '.join(args)}: rc={returncode}; nginx reloads: {reloads}; load: {load.summary()}")
    if clients:
        report = traffic.report()
        print(f"  unpaced clients: {report.summary()}")
        # Every client that retries as RFC 9112 lets it loses nothing; the one that never retries is reported.
        for kind, (_keepalive, retry) in KINDS.items():
            if retry:
                assert report.failed(kind) == 0, report.summary()
    if max_reloads is not None:
        assert reloads <= max_reloads, f"{reloads} reloads of nginx, more than {max_reloads}"
    if expect_success:
        assert returncode == 0, output[-6000:]
    else:
        assert returncode != 0, output[-6000:]
    assert load.total >= 2000
    assert load.errors == 0, load.summary()
    assert load.non_2xx == 0, load.summary()
    return output, recap


def test_converged_release_serves_everywhere():
    releases = {name: serving_release(name) for name in BACKENDS}
    assert len(set(releases.values())) == 1, releases
    state["R1"] = releases["app1"]


def test_the_load_balancer_keeps_the_retry_settings_a_rollout_relies_on():
    # A backend refusing connections while it switches relies on nginx passing the request on (error), to
    # fewer backends at once than it tries: the drain checks the batch against these.
    kept = rotation("lb1")
    assert (kept["next_upstream_tries"], kept["next_upstream_on_error"]) == (3, True), kept


def test_backends_with_one_cpu_run_one_keep_alive_worker_by_default(lb_address):
    # molecule.yml pins each backend to one CPU; site.yml ran with the roles' defaults, and the service
    # chose the one-CPU profile itself (roles/flask_app/README.md, "Sizing Gunicorn").
    for name in BACKENDS:
        assert host(name).check_output("nproc") == "1", f"{name} is not pinned to one CPU"
        assert len(gunicorn_pids(name)[1]) == 1, f"{name} does not run exactly one worker"
        assert connection_header(host(name)) == "keep-alive", f"{name}: not a gthread worker"
    with LoadGenerator(lb_address, concurrency=8, min_requests=500) as load:
        pass
    assert load.errors == 0 and load.non_2xx == 0, load.summary()
    kept = upstream_peers(host("lb1"))
    assert kept == {address_of(name) for name in BACKENDS}, "not every backend's connection was kept"


def test_rolling_deploy_of_a_changed_release_drops_nothing(tmp_path, hosts_file, lb_address):
    source = demo_release(tmp_path, R2_CHANGE)
    # One backend at a time. Each refuses new connections itself while it switches: nginx is never reloaded.
    deploy_under_load("playbooks/rolling_update.yml", hosts_file, lb_address, "-e", f"flask_app_source_dir={source}",
                      max_reloads=0)
    releases = {name: serving_release(name) for name in BACKENDS}
    assert len(set(releases.values())) == 1, releases
    assert releases["app1"] != state["R1"]
    assert all(current_release(name) == releases[name] for name in BACKENDS)
    state["R2"] = releases["app1"]
    assert upstream_servers(host("lb1")) == BACKENDS
    assert_all_in_rotation()


def test_broken_release_fails_on_the_canary_alone_and_stops_the_rollout(tmp_path, hosts_file, lb_address):
    untouched = {name: started_at(name) for name in BACKENDS[1:]}
    # Builds, installs and passes `gunicorn --check-config`, but never reports healthy.
    source = demo_release(tmp_path, "\n\n@bp.before_app_request\ndef _broken():\n    from flask import request, abort\n"
                                "    if request.path == '/healthz':\n        abort(503)\n")
    # Batches of two: the first backend still goes alone. With a settings change too: the hosts must
    # keep the settings their release runs with.
    output, _ = deploy_under_load("playbooks/rolling_update.yml", hosts_file, lb_address, "-e", "rolling_serial=2",
                                  "-e", f"flask_app_source_dir={source}", "-e", "flask_app_health_timeout=10",
                                  "-e", "flask_app_timeout=31", expect_success=False, max_reloads=1)
    assert output.count(SWITCH_PLAY) == 1, output[-3000:]
    assert "did not become healthy on app1" in output
    assert "reverted to release " + state["R2"] + " and the settings it ran with" in " ".join(output.split())
    assert "stays out of rotation" in output
    # app1 went back to R2 and serves it, out of rotation; the others were never switched.
    assert current_release("app1") == state["R2"] and serving_release("app1") == state["R2"]
    assert rotation("lb1")["drained"] == ["app1"]
    assert drained_endpoints(host("lb1")) == [f"{address_of('app1')}:8080"]
    for name in BACKENDS[1:]:
        assert current_release(name) == state["R2"]
        assert started_at(name) == untouched[name], f"{name} was restarted"
    for name in BACKENDS:
        assert "GUNICORN_TIMEOUT=30\n" in settings(name), f"{name} has settings its release was not started with"


def test_rollback_under_load_returns_every_backend_to_the_previous_release(hosts_file, lb_address):
    deploy_under_load("playbooks/rollback.yml", hosts_file, lb_address)
    releases = {name: serving_release(name) for name in BACKENDS}
    assert set(releases.values()) == {state["R1"]}, releases
    # A rollback keeps the settings in force, not those the failed rollout staged.
    assert all("GUNICORN_TIMEOUT=30\n" in settings(name) for name in BACKENDS)
    # The backend kept out after the broken release is back in rotation.
    assert_all_in_rotation()


def test_rollback_to_a_missing_release_fails_before_any_change(hosts_file):
    before = {name: started_at(name) for name in BACKENDS}
    returncode, output, _ = run_playbook("playbooks/rollback.yml", hosts_file, "-e", "release=0123456789ab",
                                         check=False)
    assert returncode != 0
    assert "flask_app_rollback_release=0123456789ab is not installed on app1" in output
    assert {name: started_at(name) for name in BACKENDS} == before
    assert {name: current_release(name) for name in BACKENDS} == {name: state["R1"] for name in BACKENDS}


def assert_all_in_rotation():
    """Neither the rotation state nor nginx has a backend out of rotation."""
    assert rotation("lb1")["drained"] == []
    assert drained_endpoints(host("lb1")) == [], upstream_lines(host("lb1"))


def releases_installed(name):
    return host(name).check_output(f"ls /opt/{SERVICE}/releases")


def test_batch_as_large_as_the_backends_in_rotation_is_refused_before_any_change(tmp_path, hosts_file):
    before = {name: (started_at(name), releases_installed(name)) for name in BACKENDS}
    source = demo_release(tmp_path, "\n# A release that must not be staged.\n")
    for batch in ("3", "100%"):
        returncode, output, _ = run_playbook("playbooks/rolling_update.yml", hosts_file, "-e", f"rolling_serial={batch}",
                                             "-e", f"flask_app_source_dir={source}", check=False)
        assert returncode != 0
        assert f"rolling_serial={batch} switches 3 backends at a time, but only 3 are in rotation" in output, output[-3000:]
    assert {name: (started_at(name), releases_installed(name)) for name in BACKENDS} == before


def test_a_batch_is_refused_when_it_would_leave_no_backend_in_rotation(tmp_path, hosts_file, lb_address):
    # app3 is out of rotation on the load balancer only (say, left there by an interrupted run), so
    # the inventory check passes; app1 and app2 would go out together and leave nothing serving.
    lb = host("lb1")
    assert rotation("lb1", state="drained", backends=["app3"])["drained"] == ["app3"]
    try:
        source = demo_release(tmp_path, R4_CHANGE)
        # Without the canary, the first batch is app1 and app2 together.
        output, _ = deploy_under_load("playbooks/rolling_update.yml", hosts_file, lb_address, "-e", "rolling_serial=2",
                                      "-e", "rolling_canary=false", "-e", f"flask_app_source_dir={source}",
                                      expect_success=False)
        assert "taking app1, app2 out of rotation would leave no backend serving" in " ".join(output.split()), \
            output[-3000:]
        # The refusal comes from the load balancer, delegated to from the backend: "[app1 -> lb1(...)]".
        assert "[app1 -> lb1" in output, output[-3000:]
        assert rotation("lb1")["drained"] == ["app3"]
        assert drained_endpoints(lb) == [f"{address_of('app3')}:8080"]
        assert {name: current_release(name) for name in BACKENDS} == {name: state["R1"] for name in BACKENDS}
    finally:
        run_playbook("playbooks/loadbalancers.yml", hosts_file)
    assert_all_in_rotation()


def test_batches_of_two_switch_with_no_dropped_request(tmp_path, hosts_file, lb_address):
    source = demo_release(tmp_path, R4_CHANGE)
    # With unpaced kept-alive and new-connection clients too: no reload closes their connections, and the
    # backends' kept-alive upstream connections (gthread workers) close with an answer, never under a request.
    output, _ = deploy_under_load("playbooks/rolling_update.yml", hosts_file, lb_address, "-e", "rolling_serial=2",
                                  "-e", f"flask_app_source_dir={source}", max_reloads=0, clients=True)
    releases = {name: serving_release(name) for name in BACKENDS}
    assert len(set(releases.values())) == 1 and releases["app1"] != state["R1"], releases
    # Two batches: app1 alone (the canary), then app2 and app3 together.
    batches = [batch_hosts(batch) for batch in output.split(SWITCH_PLAY)[1:]]
    assert batches == [{"app1"}, {"app2", "app3"}], output[-3000:]
    assert_all_in_rotation()
    state["R4"] = releases["app1"]


def previous_release(name):
    return host(name).file(f"/opt/{SERVICE}/previous").linked_to.rsplit("/", 1)[1]


def test_rollback_after_a_partial_rollout_is_refused_until_a_release_is_named(tmp_path, hosts_file, lb_address):
    # A rollout that reached app1 only (here by --limit): app1 runs R5 after R4, app2 and app3 still run R4.
    source = demo_release(tmp_path, "\n# A release that reaches app1 only.\n")
    run_playbook("playbooks/rolling_update.yml", hosts_file, "--limit", "app1", "-e", f"flask_app_source_dir={source}")
    r5 = current_release("app1")
    assert r5 != state["R4"] and previous_release("app1") == state["R4"]
    assert [current_release(name) for name in BACKENDS[1:]] == [state["R4"], state["R4"]]
    # Each host's own previous release would be R4 for app1 and an older one for the others.
    before = {name: started_at(name) for name in BACKENDS}
    returncode, output, _ = run_playbook("playbooks/rollback.yml", hosts_file, check=False)
    assert returncode != 0
    unwrapped = " ".join(output.split())
    assert "the backends would roll back to different releases" in unwrapped, output[-3000:]
    assert f"app1: {r5} -> {state['R4']}" in unwrapped
    assert f"app2: {state['R4']} -> {previous_release('app2')}" in unwrapped
    assert "choose one for all with -e release=ID" in unwrapped
    assert {name: started_at(name) for name in BACKENDS} == before
    assert current_release("app1") == r5
    # Named, the rollback switches app1 alone: the others already run R4.
    deploy_under_load("playbooks/rollback.yml", hosts_file, lb_address, "-e", f"release={state['R4']}")
    assert {name: serving_release(name) for name in BACKENDS} == {name: state["R4"] for name in BACKENDS}
    assert {name: started_at(name) for name in BACKENDS[1:]} == {name: before[name] for name in BACKENDS[1:]}
    assert_all_in_rotation()


def listening_at(name, port):
    """The addresses a backend listens at on PORT, as ss prints them ("0.0.0.0:8080", "10.0.0.5:8081")."""
    return {socket for socket in listening_sockets(host(name)) if socket.endswith(f":{port}")}


def test_a_port_and_address_change_takes_each_backend_out_of_rotation_and_back_at_the_new_socket(
        tmp_path, hosts_file, lb_address):
    # A HUP would make Gunicorn close its socket and listen anew at once, in rotation: the switch drains
    # each backend and restarts it instead. Each moves from every address at 8080 to its own at 8081.
    addresses = {name: address_of(name) for name in BACKENDS}
    moved = write_inventory(tmp_path / "hosts.yml", {"loadbalancers": ["lb1"], "backends": BACKENDS},
                            {**LB_VARS, "backends": {"flask_app_port": 8081, "nginx_lb_backend_port": 8081}},
                            {name: {"flask_app_bind_address": addresses[name]} for name in BACKENDS})
    # The same source as R4: the release stays, only the socket changes.
    source = demo_release(tmp_path, R4_CHANGE)
    before = {name: started_at(name) for name in BACKENDS}
    # The backends' playbook alone: each backend must come back at 8081 on the load balancer.
    deploy_under_load("playbooks/rolling_update.yml", moved, lb_address, "-e", f"flask_app_source_dir={source}")
    for name in BACKENDS:
        assert current_release(name) == state["R4"]
        assert started_at(name) != before[name], f"{name} was reloaded, not restarted"
        assert listening_at(name, 8081) == {f"{addresses[name]}:8081"} and not listening_at(name, 8080)
    lines = upstream_lines(host("lb1"))
    assert len(lines) == 3 and all(":8081 " in line and " down;" not in line for line in lines), lines
    # site.yml renders that same upstream from the inventory: nothing is left to change on the load balancer.
    _, _, recap = run_playbook("site.yml", moved, "--limit", "loadbalancers", "-e", f"flask_app_source_dir={source}")
    assert recap["lb1"]["changed"] == 0, recap
    # Back to every address at 8080, this time through site.yml.
    deploy_under_load("site.yml", hosts_file, lb_address, "-e", f"flask_app_source_dir={source}")
    for name in BACKENDS:
        assert listening_at(name, 8080) == {"0.0.0.0:8080"} and not listening_at(name, 8081)
    assert all(":8080 " in line for line in upstream_lines(host("lb1"))), upstream_lines(host("lb1"))
    assert {name: serving_release(name) for name in BACKENDS} == {name: state["R4"] for name in BACKENDS}


def unit(name):
    return host(name).file(f"/etc/systemd/system/{SERVICE}.service").content_string


def test_a_unit_the_service_cannot_start_under_is_reverted_on_the_first_host(tmp_path, hosts_file, lb_address):
    # The same source as R4: only the unit changes. Without AF_INET Gunicorn cannot open its socket.
    source = demo_release(tmp_path, R4_CHANGE)
    before = {name: (started_at(name), unit(name)) for name in BACKENDS}
    output, _ = deploy_under_load("playbooks/rolling_update.yml", hosts_file, lb_address,
                                  "-e", f"flask_app_source_dir={source}", "-e", "flask_app_health_timeout=10",
                                  "-e", '{"flask_app_restrict_address_families": ["AF_UNIX"]}', expect_success=False)
    assert "did not become healthy on app1" in output
    assert f"put back the systemd unit it ran with on release {state['R4']}" in " ".join(output.split())
    # app1 runs R4 under the unit it had, out of rotation; the others were not restarted.
    assert serving_release("app1") == state["R4"]
    assert {name: unit(name) for name in BACKENDS} == {name: before[name][1] for name in BACKENDS}
    assert "RestrictAddressFamilies=AF_UNIX\n" in host("app2").file(f"/etc/{SERVICE}/{SERVICE}.service.staged").content_string
    reverted = {name: started_at(name) for name in BACKENDS}
    assert {name: reverted[name] for name in BACKENDS[1:]} == {name: before[name][0] for name in BACKENDS[1:]}
    # Without the bad input the staged unit is the live one again: no restart, and app1 goes back in rotation.
    deploy_under_load("site.yml", hosts_file, lb_address, "-e", f"flask_app_source_dir={source}")
    assert {name: started_at(name) for name in BACKENDS} == reverted
    assert_all_in_rotation()


def access_log_since(since):
    """lb1's JSON access log lines logged at or after SINCE (seconds since the epoch), as dicts."""
    lines = host("lb1").check_output(f"cat /var/log/nginx/{SERVICE}.access.log").splitlines()
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    return [entry for entry in entries
            if datetime.datetime.fromisoformat(entry["time"]).timestamp() >= int(since)]


def test_a_killed_backend_loses_no_get_and_only_the_posts_it_had(lb_address):
    """SIGKILL of every process of one backend's service under unpaced load (kept-alive and new connections,
    GET and POST): nginx sends each GET that failed on it to another backend; a POST it had already sent
    may have run, so it answers 502 (nginx_lb_next_upstream has no non_idempotent). systemd restarts the
    service, and the backend is back in rotation within its fail timeout."""
    victim = "app2"
    victim_address = f"{address_of(victim)}:8080"
    with Traffic(f"{lb_address}:80", EXPECTED_BODY) as traffic:
        time.sleep(2)
        killed_at = time.time()
        host(victim).run(f"systemctl kill --signal=KILL {SERVICE}")
        time.sleep(3)
    report = traffic.report()
    # The log's method of an answer nginx wrote itself (its JSON 502, an error_page) is GET: the URI tells
    # the POSTs (/echo) from the GETs (/requestme).
    failed = [(entry["uri"], entry["status"], entry["upstream_addr"])
              for entry in access_log_since(killed_at) if entry["status"] >= 500]
    print(f"SIGKILL of {victim}'s service: {report.summary()}")
    print(f"  5xx at the load balancer since the kill (uri, status, backends tried): {failed}")
    assert report.failed(method="GET") == 0, report.summary()
    # A POST fails only if it was in flight on the killed backend: at most one per client, each at that backend alone.
    assert report.failed(method="POST") <= len(traffic.threads), report.summary()
    assert all(uri == "/echo" and tried == victim_address for uri, _status, tried in failed), failed
    # Restart=on-failure brings the service back; nginx tries the backend again after nginx_lb_fail_timeout (3 s).
    wait_for(lambda: victim_address in {request(f"http://{lb_address}/requestme").headers["X-Upstream-Addr"]
                                        for _ in range(6)}, timeout=30, interval=0.5,
             what=f"{victim} to serve again through the load balancer")
    print(f"  {victim} served again {time.time() - killed_at:.1f}s after the kill")
    assert time.time() - killed_at <= 2 + 15 + 3, "not back within RestartSec, start-up and fail_timeout"


def served_by(lb_address, count=30):
    """The backends (inventory names) that answered COUNT requests through the load balancer."""
    names = {f"{address_of(name)}:8080": name for name in BACKENDS}
    return {names.get(request(f"http://{lb_address}/requestme").headers["X-Upstream-Addr"], "?") for _ in range(count)}


def test_a_backend_failing_in_a_batch_leaves_its_healthy_neighbour_serving(tmp_path, lb_address):
    """The batch's healthy backend came back with no reload; the backend that failed stays out: the failed
    batch reloads nginx once with it marked down before the rollout stops."""
    # Only app2 gets a unit the service cannot start under; app1 shares its batch (no canary).
    failing = write_inventory(tmp_path / "hosts.yml", {"loadbalancers": ["lb1"], "backends": BACKENDS}, LB_VARS,
                              host_vars={"app2": {"flask_app_restrict_address_families": ["AF_UNIX"]}})
    # R2 again: installed everywhere, so the rollout's time goes to the switch.
    source = demo_release(tmp_path, R2_CHANGE)
    output, _ = deploy_under_load("playbooks/rolling_update.yml", failing, lb_address, "-e", "rolling_serial=2",
                                  "-e", "rolling_canary=false", "-e", f"flask_app_source_dir={source}",
                                  "-e", "flask_app_health_timeout=10", expect_success=False, max_reloads=1)
    assert "did not become healthy on app2" in output
    assert current_release("app1") == state["R2"]
    assert serving_release("app2") == state["R4"] and current_release("app3") == state["R4"]
    assert rotation("lb1")["drained"] == ["app2"] and not rotation("lb1")["reload_pending"]
    assert served_by(lb_address) == {"app1", "app3"}


def test_rollout_refuses_to_drain_the_last_backend_in_rotation(tmp_path, lb_address):
    # app2 and app3 are marked down in the inventory: app1 is the only backend serving.
    hosts_file = write_inventory(tmp_path / "hosts.yml", {"loadbalancers": ["lb1"], "backends": BACKENDS}, LB_VARS,
                                 all_vars={"nginx_lb_backend_down": "{{ inventory_hostname in ['app2', 'app3'] }}"})
    run_playbook("playbooks/loadbalancers.yml", hosts_file)
    # R4, which app1 ran before: installed, so the run gets to the drain at once.
    source = demo_release(tmp_path, R4_CHANGE)
    returncode, output, _ = run_playbook("playbooks/rolling_update.yml", hosts_file,
                                         "-e", f"flask_app_source_dir={source}", check=False)
    assert returncode != 0
    assert "would leave no backend serving" in output
    assert current_release("app1") == state["R2"]
