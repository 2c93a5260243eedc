"""Shared fixtures for every scenario's testinfra tests.

Hosts are chosen by inventory group, and HTTP goes from this machine straight
to the load balancer container on the scenario's own Docker network: real
requests through the real nginx to the real Gunicorn. The helpers live in
tests/support by concern; the scenarios import them from here.
"""

import pytest

from tests.support.hosts import (SERVICE, address_of, connection_header, container_of, drained_endpoints,
                                 gunicorn_pids, healthz, hosts_in, inventory, inventory_name, journal,
                                 listening_sockets, nginx_reloads, rotation, upstream_lines, upstream_peers, upstream_servers,
                                 write_inventory)
from tests.support.load import LoadGenerator
from tests.support.playbook import PROJECT_ROOT, ansible_command, run_as_user, run_playbook
from tests.support.web import EXPECTED_BODY, Response, request, wait_for

PROJECT = str(PROJECT_ROOT)

__all__ = ["EXPECTED_BODY", "PROJECT", "SERVICE", "LoadGenerator", "Response", "address_of", "ansible_command",
           "connection_header", "container_of", "drained_endpoints", "gunicorn_pids", "healthz",
           "hosts_in", "inventory", "inventory_name", "journal", "listening_sockets", "nginx_reloads", "request", "rotation",
           "run_as_user", "run_playbook", "upstream_lines", "upstream_peers", "upstream_servers", "wait_for",
           "write_inventory"]


@pytest.fixture(scope="session")
def lb_url():
    """The site's address: the load balancers' floating address where they have one, else the first's."""
    lb = inventory().get_hosts("loadbalancers")[0]
    floating = inventory().get_variables(lb).get("keepalived_virtual_addresses") or []
    return f"http://{floating[0] if floating else address_of(lb)}"


@pytest.fixture(scope="module")
def scenario_hosts_file(tmp_path_factory):
    """An inventory of the scenario's load balancers and backends, grouped as its own inventory groups
    them, to run the project's playbooks with as a user does."""
    runner = inventory()
    return write_inventory(tmp_path_factory.mktemp("inventory") / "hosts.yml",
                           {group: runner.get_hosts(group) for group in ("loadbalancers", "backends")})


@pytest.fixture(scope="session")
def backend_by_address():
    """Maps "ip:port" as nginx reports it in X-Upstream-Addr to the inventory name of every host of
    the scenario that may serve (spares included, which a test may add as backends): not the load
    balancers, nor the test servers a scenario runs beside them (the acme_servers group)."""
    runner = inventory()
    hosts = set(runner.get_hosts("all")) - set(runner.get_hosts("loadbalancers")) - set(runner.get_hosts("acme_servers"))
    return {f"{address_of(name)}:8080": name for name in hosts}


@pytest.fixture(scope="session")
def backend_host():
    """A testinfra host for a backend by inventory name."""
    runner = inventory()
    return lambda name: runner.get_host(name)
