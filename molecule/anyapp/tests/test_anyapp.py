"""Another Flask app, deployed by the roles from inventory alone.

greeter-api (tests/apps/greeter) differs from the demo service in every
point the roles take as input: its package and flat layout, its factory
target, its health path (no release id in the answer), a compiled
dependency, a Debian package, a required setting, a secret, its release
hooks. The tests run in file order and build on each other: converge
deployed version 1; a changed copy (version 2) rolls through the load
balancer under load; a third release is stopped by a failing hook; the
rollback goes back to version 1.
"""

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import (PROJECT, LoadGenerator, address_of, inventory, request, run_playbook, wait_for, write_inventory)

testinfra_hosts = []

SERVICE = "greeter"
BACKENDS = ["app1", "app2"]
SOURCE = f"{PROJECT}/tests/apps/greeter"
# Made at test time by the scenario's inventory (a password lookup), read where it keeps it.
SIGNING_KEY = (Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "greeter-signing-key").read_text().strip()
HOOK_LOG = "/var/tmp/greeter-hooks.log"
state = {}


def host(name):
    return inventory().get_host(name)


@pytest.fixture(scope="module")
def hosts_file(tmp_path_factory):
    return write_inventory(tmp_path_factory.mktemp("inventory") / "hosts.yml",
                           {"loadbalancers": ["lb1"], "backends": BACKENDS})


@pytest.fixture(scope="module")
def lb_address():
    return address_of("lb1")


def current_release(name):
    return host(name).file(f"/opt/{SERVICE}/current").linked_to.rsplit("/", 1)[1]


def version_on(name):
    return request(f"http://{address_of(name)}:8080/hello").json()["version"]


def hook_runs(when):
    """Lines the hook wrote for WHEN, per backend."""
    return {name: host(name).run(f"grep -c '^{when} ' {HOOK_LOG}").stdout.strip() or "0" for name in BACKENDS}


def total_runs(when):
    return sum(int(count) for count in hook_runs(when).values())


def app_copy(tmp_path, version, name="greeter"):
    """A copy of greeter-api's source whose VERSION is `version`: another release."""
    source = tmp_path / name
    shutil.copytree(SOURCE, source, ignore=shutil.ignore_patterns("__pycache__", ".*"))
    package = source / "greeter_api" / "__init__.py"
    package.write_text(package.read_text().replace("VERSION = 1\n", f"VERSION = {version}\n"))
    return source


def deploy_under_load(playbook, hosts_file, lb_address, *args):
    with LoadGenerator(lb_address, concurrency=8, min_requests=1500, path="/hello", echo=False,
                       expected=lambda body: body.get("greeting") == "Hello from greeter"
                       and body.get("version") in (1, 2)) as load:
        returncode, output, recap = run_playbook(playbook, hosts_file, *args, check=False)
    print(f"{playbook} {' '.join(args)}: rc={returncode}; load: {load.summary()}")
    assert returncode == 0, output[-6000:]
    assert load.total >= 1500
    assert load.errors == 0 and load.non_2xx == 0, load.summary()
    return output, recap


def test_the_app_serves_through_the_load_balancer(lb_address):
    answer = request(f"http://{lb_address}/hello")
    assert answer.status == 200
    body = answer.json()
    assert (body["greeting"], body["version"], body["zone"]) == ("Hello from greeter", 1, "Europe/Paris")
    # The secret reached the app: it signs with it.
    assert len(body["signature"]) == 16


@pytest.mark.parametrize("name", BACKENDS)
def test_the_health_path_answers_without_a_release(name):
    answer = request(f"http://{address_of(name)}:8080/ping")
    assert (answer.status, answer.json()) == (200, {"ok": True})


@pytest.mark.parametrize("name", BACKENDS)
def test_the_service_name_is_the_only_name_on_the_host(name):
    backend = host(name)
    assert backend.service(SERVICE).is_running
    assert backend.user(SERVICE).group == SERVICE
    assert backend.check_output(f"systemctl show -p SyslogIdentifier --value {SERVICE}") == SERVICE
    assert backend.check_output(f"systemctl show -p User --value {SERVICE}") == SERVICE
    unit = backend.file(f"/etc/systemd/system/{SERVICE}.service").content_string
    assert "greeter_api:create_app()" in unit
    for leftover in ("/opt/hello-service", "/etc/hello-service", "/etc/systemd/system/hello-service.service"):
        assert not backend.file(leftover).exists, leftover
    assert backend.run("getent passwd hello-service").rc != 0
    # The journal knows the service by its name.
    assert backend.run(f"journalctl -t {SERVICE} -n 1 --no-pager -q").stdout.strip()


@pytest.mark.parametrize("name", BACKENDS)
def test_the_settings_file_holds_the_secret_for_the_service_only(name):
    settings = host(name).file(f"/etc/{SERVICE}/settings.env")
    assert (settings.user, settings.group, settings.mode) == ("root", SERVICE, 0o640)
    content = settings.content_string
    assert 'GREETER_GREETING="Hello from greeter"\n' in content
    assert f'GREETER_SIGNING_KEY="{SIGNING_KEY}"\n' in content
    assert "GUNICORN_SECRET_NAMES=GREETER_SIGNING_KEY\n" in content
    assert "HELLO_SERVICE_" not in content
    # No release id variable asked for: the release's environment names none.
    assert "=" not in host(name).file(f"/opt/{SERVICE}/current/release.env").content_string


@pytest.mark.parametrize("name", BACKENDS)
def test_the_compiled_dependency_came_from_a_platform_wheel(name):
    release = host(name).file(f"/opt/{SERVICE}/current").linked_to
    wheels = host(name).check_output(f"ls {release}/wheels")
    assert any(wheel.startswith("msgpack-") and "manylinux" in wheel for wheel in wheels.split()), wheels
    # The C extension, not a pure-Python fallback, is what the release imports.
    host(name).run_expect([0], f"{release}/venv/bin/python -c 'import msgpack._cmsgpack'")
    assert host(name).package("tzdata").is_installed


def test_the_before_switch_hook_ran_once_for_the_fleet():
    # Converge switched both backends (one hook run), the idempotence run none.
    assert total_runs("before-switch") == 1, hook_runs("before-switch")
    line = next(host(name).file(HOOK_LOG).content_string for name in BACKENDS
                if hook_runs("before-switch")[name] == "1")
    uid = host("app1").check_output(f"id -u {SERVICE}")
    assert f"version=1 uid={uid} greeting=Hello from greeter" in line


def test_the_after_switch_hook_ran_on_each_backend():
    assert hook_runs("after-switch") == {"app1": "1", "app2": "1"}


def test_a_missing_required_setting_stops_the_deploy_with_the_app_s_message(hosts_file):
    before = {name: current_release(name) for name in BACKENDS}
    returncode, output, _ = run_playbook("site.yml", hosts_file, "-e", json.dumps({"flask_app_environment": {}}),
                                         check=False)
    assert returncode != 0
    assert "GREETER_GREETING is not set" in output, output[-4000:]
    assert SIGNING_KEY not in output
    assert {name: current_release(name) for name in BACKENDS} == before
    assert total_runs("before-switch") == 1


def test_the_service_refuses_to_start_without_its_required_setting():
    # On app1, the service restarted with a settings file that lacks the greeting:
    # its workers refuse to boot, Gunicorn stops, and the journal says why. Then it is put back.
    backend = host("app1")
    settings = f"/etc/{SERVICE}/settings.env"
    since = backend.check_output("date +%s")

    def journal():
        return backend.check_output(f"journalctl -t {SERVICE} --since @{since} --no-pager -o cat")

    backend.run_expect([0], f"cp -p {settings} /root/settings.env.saved && sed -i '/^GREETER_GREETING=/d' {settings}")
    try:
        backend.run(f"systemctl restart {SERVICE}")
        wait_for(lambda: "Worker failed to boot" in journal(), timeout=60, what="Gunicorn to give up")
        assert "GREETER_GREETING is not set: greeter-api needs the greeting" in journal(), journal()[-3000:]
    finally:
        backend.run_expect([0], f"cp -p /root/settings.env.saved {settings}; systemctl reset-failed {SERVICE}"
                                f"; systemctl restart {SERVICE}")
    wait_for(lambda: backend.run("python3 -c \"import urllib.request;"
                                 " urllib.request.urlopen('http://127.0.0.1:8080/ping')\"").rc == 0,
             timeout=60, what="app1 to serve again")
    assert version_on("app1") == 1


def test_a_change_rolls_through_the_load_balancer_under_load(tmp_path_factory, hosts_file, lb_address):
    state["v1"] = current_release("app1")
    source = app_copy(tmp_path_factory.mktemp("v2"), 2)
    output, recap = deploy_under_load("site.yml", hosts_file, lb_address, "-e", f"flask_app_source_dir={source}")
    assert all(version_on(name) == 2 for name in BACKENDS)
    state["v2"] = current_release("app1")
    assert state["v2"] != state["v1"]
    assert total_runs("before-switch") == 2, hook_runs("before-switch")
    assert hook_runs("after-switch") == {"app1": "2", "app2": "2"}
    assert SIGNING_KEY not in output
    state["v2_source"] = source


def test_a_failing_before_switch_hook_stops_the_deploy_with_nothing_switched(tmp_path_factory, hosts_file):
    source = app_copy(tmp_path_factory.mktemp("v3"), 3)
    hooks = ["python -m greeter_api.migrate before-switch",
             "echo 'schema is locked by another migration' >&2; exit 3"]
    returncode, output, recap = run_playbook(
        "site.yml", hosts_file, "-e", f"flask_app_source_dir={source}",
        "-e", json.dumps({"flask_app_before_switch_hooks": hooks}), check=False)
    assert returncode != 0
    unwrapped = " ".join(output.split())
    assert "flask_app_before_switch_hooks failed on app1" in unwrapped, output[-4000:]
    assert "schema is locked by another migration" in unwrapped
    assert "nothing was switched" in unwrapped
    assert {name: current_release(name) for name in BACKENDS} == dict.fromkeys(BACKENDS, state["v2"])
    assert all(version_on(name) == 2 for name in BACKENDS)
    # The first command ran, once; the switch's hooks did not.
    assert total_runs("before-switch") == 3
    assert hook_runs("after-switch") == {"app1": "2", "app2": "2"}


def test_the_rollback_goes_back_under_load(hosts_file, lb_address):
    deploy_under_load("playbooks/rollback.yml", hosts_file, lb_address)
    assert {name: current_release(name) for name in BACKENDS} == dict.fromkeys(BACKENDS, state["v1"])
    assert all(version_on(name) == 1 for name in BACKENDS)
    # The inventory's source is version 1 again: a re-run changes nothing and runs no hook.
    _, _, recap = run_playbook("site.yml", hosts_file)
    assert all(counts["changed"] == 0 for counts in recap.values()), recap
    assert total_runs("before-switch") == 3
