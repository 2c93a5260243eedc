"""Shared fixtures and helpers for every scenario's testinfra tests.

Hosts are chosen by inventory group, and HTTP goes from this machine straight
to the load balancer container on the scenario's own Docker network: real
requests through the real nginx to the real Gunicorn.
"""

import json
import os
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import testinfra.utils.ansible_runner

SERVICE = "hello-service"
EXPECTED_BODY = {"message": "Hello Flask.!!"}


def inventory():
    return testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])


def hosts_in(group):
    """Testinfra host specs of an inventory group, for `testinfra_hosts`."""
    return inventory().get_hosts(group)


def container_of(name):
    return inventory().get_variables(name)["ansible_host"]


def container_ip(container):
    output = subprocess.run(
        ["docker", "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", container],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    assert output, f"container {container} has no address"
    return output[0]


def journal(host, unit=SERVICE, lines=60):
    """The unit's recent log, to print when a service check fails."""
    return host.run(f"journalctl -u {unit} -n {lines} --no-pager").stdout


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)


def request(url, method="GET", body=None, timeout=10):
    """One HTTP request; 4xx and 5xx answers are returned, not raised."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as answer:
            return Response(answer.status, answer.headers, answer.read().decode())
    except urllib.error.HTTPError as error:
        return Response(error.code, error.headers, error.read().decode())


def wait_for(predicate, timeout=30, interval=0.5, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="session")
def lb_url():
    lb = inventory().get_hosts("loadbalancers")[0]
    return f"http://{container_ip(container_of(lb))}"


@pytest.fixture(scope="session")
def backend_by_address():
    """Maps "ip:port" as nginx reports it in X-Upstream-Addr to the backend's inventory name."""
    return {f"{container_ip(container_of(name))}:8080": name for name in inventory().get_hosts("backends")}


@pytest.fixture(scope="session")
def backend_host():
    """A testinfra host for a backend by inventory name."""
    runner = inventory()
    return lambda name: runner.get_host(name)
