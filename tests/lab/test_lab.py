"""The README's first command, end to end: `make up` from nothing, a re-run
that changes nothing, and `make down` that leaves nothing behind.

Replaces any running lab: it starts from a clean state on purpose.
"""

import json
import os
import re
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.support import inventory as inventories
from tests.support import playbook
from tests.support.demo_release import demo_release
from tests.support.prometheus import Prometheus

PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
URL = "https://127.0.0.1:8443/requestme"
HTTP_URL = "http://127.0.0.1:8080/requestme"
# The lab's own CA, which make up makes: the README's curl --cacert line.
LAB_CA = os.path.join(PROJECT, ".lab", "tls", "ca.crt")


def lab_https():
    """A client that trusts the lab's CA only (not the system's)."""
    return ssl.create_default_context(cafile=LAB_CA)
LAB_LABEL = "hello-service.lab=hello-lab"


def make(target, *variables):
    started = time.monotonic()
    result = subprocess.run(["make", target, *variables], cwd=PROJECT, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    print(f"make {target}: exit {result.returncode} in {elapsed:.1f}s")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout, elapsed


def docker_lines(*args):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout.split()


def deploy_changes():
    """Changed results per host of make up's last site.yml run, as the playbook runner recorded them."""
    with open(os.path.join(PROJECT, ".logs", "deploy.json"), encoding="utf-8") as stats:
        return {host: counts["changed"] for host, counts in json.load(stats)["stats"].items()}


@pytest.fixture(scope="module")
def clean_lab():
    make("down")
    assert docker_lines("ps", "-aq", "--filter", f"label={LAB_LABEL}") == []
    yield
    make("down")


def test_up_serves_the_original_json_from_both_backends(clean_lab):
    output, elapsed = make("up")
    with urllib.request.urlopen(URL, timeout=10, context=lab_https()) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"] == "application/json"
        assert json.loads(answer.read()) == {"message": "Hello Flask.!!"}
    served = set()
    for _ in range(20):
        with urllib.request.urlopen(URL, timeout=10, context=lab_https()) as answer:
            served.add(answer.headers["X-Upstream-Addr"])
    assert len(served) == 2, served
    # The closing lines name the backend that answered each request.
    assert re.search(r"Hello Flask\.!!\"\}\s+<- app1", output) and re.search(r"<- app2", output), output
    assert set(deploy_changes()) == {"lb1", "app1", "app2", "mon1"}, "no stats for every host in .logs/deploy.json"


def test_prometheus_on_loopback_watches_every_host_of_the_inventory(clean_lab):
    # The README's Prometheus UI: its targets come from the inventory, and each answers.
    expected = {("app", "app1"), ("app", "app2"), ("nginx", "lb1"), ("nginx_log", "lb1"), ("node", "app1"),
                ("node", "app2"), ("node", "lb1"), ("node", "mon1"), ("prometheus", None)}
    prometheus = Prometheus("http://127.0.0.1:9090")
    deadline = time.monotonic() + 90
    while True:
        try:
            targets = prometheus.targets()
        except OSError:  # a Prometheus that make up's handlers have just restarted
            targets = []
        watched = {(target["labels"]["job"], target["labels"].get("host")) for target in targets}
        down = [(target["scrapeUrl"], target["lastError"]) for target in targets if target["health"] != "up"]
        if (watched == expected and not down) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert watched == expected, watched
    assert not down, down


def test_http_redirects_to_the_labs_https_with_hsts(clean_lab):
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    with pytest.raises(urllib.error.HTTPError) as redirect:
        urllib.request.build_opener(NoRedirect).open(HTTP_URL, timeout=10)
    assert redirect.value.code == 308 and redirect.value.headers["Location"] == URL
    with urllib.request.urlopen(URL, timeout=10, context=lab_https()) as answer:
        assert answer.headers["Strict-Transport-Security"] == "max-age=63072000"


def test_second_up_changes_nothing(clean_lab):
    _, elapsed = make("up")
    changes = deploy_changes()
    assert changes and all(changed == 0 for changed in changes.values()), changes
    print(f"idempotent make up: {elapsed:.1f}s")


def sysctl_value(key, container=None):
    """KEY's value in CONTAINER's network namespace, or in a new one (the kernel's default)."""
    argv = ["docker", "exec", container] if container else ["unshare", "--net"]
    return subprocess.run([*argv, "sysctl", "--values", key], capture_output=True, text=True, check=True).stdout.strip()


def test_load_balancer_container_runs_with_the_roles_kernel_settings(clean_lab):
    # nginx_lb cannot write a container's /proc/sys: playbooks/lab.yml has the
    # engine create the load balancer with nginx_lb_sysctl's network settings.
    assert sysctl_value("net.ipv4.tcp_tw_reuse", "hello-lab-lb1") == "1"
    # The backends get none: they keep the kernel's default.
    default = sysctl_value("net.ipv4.tcp_tw_reuse")
    assert default != "1"
    assert sysctl_value("net.ipv4.tcp_tw_reuse", "hello-lab-app1") == default


def test_a_rollout_in_the_lab_takes_each_backend_out_on_the_load_balancer(clean_lab, tmp_path):
    # The drain is a task each backend's play delegates to lb1: it must run in lb1's container, with
    # lb1's address, not in the backend's own (where it would find no site and do nothing). It records the
    # backend out of rotation there without a reload: the backend refuses new connections itself.
    source = demo_release(tmp_path, "\n# A change that makes a new release.\n")
    result = playbook.run("playbooks/rolling_update.yml", os.path.join(PROJECT, "inventories", "local"),
                          "-e", f"flask_app_source_dir={source}", env=playbook.user_env(), check=True)
    drains = {}
    for event in result.events:
        data = event.get("event_data", {})
        if event.get("event") == "runner_on_ok" and data.get("task") == "Mark the backend on each load balancer as down":
            for item in data["res"]["results"]:
                drains[data["host"]] = (item["item"], item["drained"], item.get("reloaded"))
    assert drains == {"app1": ("lb1", ["app1"], False), "app2": ("lb1", ["app2"], False)}, drains


def lab_containers(inventory):
    """The containers step of `make up` alone: playbooks/lab.yml on INVENTORY."""
    result = subprocess.run([os.path.join(PROJECT, ".venv", "bin", "ansible-playbook"), "-i", str(inventory),
                             "playbooks/lab.yml"], cwd=PROJECT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def test_the_lab_s_containers_follow_the_inventory(clean_lab, tmp_path):
    # `make up` brings the containers in line with the inventory before site.yml deploys them; that
    # site.yml then puts a new backend in rotation and takes a removed one out is the anyapp scenario's
    # scaling test.
    inventory = tmp_path / "local"
    shutil.copytree(os.path.join(PROJECT, "inventories", "local"), inventory)
    hosts = inventory / "hosts.yml"
    document = inventories.read(hosts)
    document["all"]["children"]["backends"]["hosts"]["app3"] = None
    inventories.write(hosts, document)
    lab_containers(inventory)
    assert "hello-lab-app3" in docker_lines("ps", "--format", "{{.Names}}")
    # The repository's inventory has no app3: its container goes.
    lab_containers(os.path.join(PROJECT, "inventories", "local"))
    assert "hello-lab-app3" not in docker_lines("ps", "-a", "--format", "{{.Names}}")
    assert {"hello-lab-lb1", "hello-lab-app1", "hello-lab-app2"} <= set(docker_lines("ps", "--format", "{{.Names}}"))


def test_down_leaves_nothing(clean_lab):
    make("down")
    assert docker_lines("ps", "-aq", "--filter", f"label={LAB_LABEL}") == []
    assert "hello-lab" not in docker_lines("network", "ls", "--format", "{{.Name}}")
