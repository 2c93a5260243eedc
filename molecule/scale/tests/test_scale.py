"""Scaling is an inventory edit and a re-run of site.yml, nothing else."""

from collections import Counter

import pytest

from conftest import inventory, request, run_playbook, upstream_servers, write_inventory

testinfra_hosts = []

LB_VARS = {"loadbalancers": {"nginx_lb_expose_upstream": True}}


@pytest.fixture(scope="module")
def lb():
    return inventory().get_host("lb1")


def served_by(lb_url, backend_by_address, count=60):
    return Counter(backend_by_address.get(request(f"{lb_url}/requestme").headers["X-Upstream-Addr"], "?")
                   for _ in range(count))


def test_limit_to_loadbalancers_keeps_every_backend(tmp_path, lb):
    # No facts of the backends are gathered in this run: the upstream must
    # still come out the same, from the inventory alone.
    path = write_inventory(tmp_path / "hosts.yml", {"loadbalancers": ["lb1"], "backends": ["app1", "app2"]}, LB_VARS)
    _, _, recap = run_playbook("site.yml", path, "--limit", "loadbalancers")
    assert recap["lb1"]["changed"] == 0
    assert upstream_servers(lb) == ["app1", "app2"]


def test_adding_a_backend_puts_it_in_rotation(tmp_path, lb, lb_url, backend_by_address):
    path = write_inventory(tmp_path / "hosts.yml",
                           {"loadbalancers": ["lb1"], "backends": ["app1", "app2", "app3"]}, LB_VARS)
    _, output, recap = run_playbook("site.yml", path)
    assert recap["app3"]["changed"] > 0
    assert upstream_servers(lb) == ["app1", "app2", "app3"]
    assert set(served_by(lb_url, backend_by_address)) == {"app1", "app2", "app3"}
    # And the re-run is idempotent again.
    _, _, recap = run_playbook("site.yml", path)
    assert all(counts["changed"] == 0 for counts in recap.values()), recap


def test_removing_a_backend_takes_it_out(tmp_path, lb, lb_url, backend_by_address):
    path = write_inventory(tmp_path / "hosts.yml", {"loadbalancers": ["lb1"], "backends": ["app1", "app2"]}, LB_VARS)
    run_playbook("site.yml", path)
    assert upstream_servers(lb) == ["app1", "app2"]
    assert set(served_by(lb_url, backend_by_address)) == {"app1", "app2"}
