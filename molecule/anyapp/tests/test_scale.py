"""Scaling is an inventory edit and a re-run of site.yml, nothing else.

Runs after test_anyapp.py (file order): greeter-api serves on app1 and app2.
"""

from collections import Counter

import pytest

from conftest import (address_of, inventory, request, run_playbook, upstream_lines, upstream_servers, write_inventory)

SERVICE = "greeter"
PATH = "/hello"

testinfra_hosts = []

LB_VARS = {"loadbalancers": {"nginx_lb_expose_upstream": True}}


@pytest.fixture(scope="module")
def lb():
    return inventory().get_host("lb1")


def served_by(lb_url, backend_by_address, count=60):
    return Counter(backend_by_address.get(request(f"{lb_url}{PATH}").headers["X-Upstream-Addr"], "?")
                   for _ in range(count))


def test_limit_to_loadbalancers_keeps_every_backend(tmp_path, lb):
    # No facts of the backends are gathered in this run, nor cached from
    # earlier ones: the upstream must still come out the same, from the
    # inventory alone.
    path = write_inventory(tmp_path / "hosts.yml", {"loadbalancers": ["lb1"], "backends": ["app1", "app2"]}, LB_VARS)
    _, _, recap = run_playbook("site.yml", path, "--limit", "loadbalancers", "--flush-cache")
    assert recap["lb1"]["changed"] == 0
    assert upstream_servers(lb) == ["app1", "app2"]


def added_servers(output, backend):
    """Lines of a --diff output that add an upstream server line for BACKEND (by its address)."""
    server = f"server {address_of(backend)}:8080 "
    return [line for line in output.splitlines() if line.startswith("+") and server in line]


def test_check_mode_previews_a_new_backend_and_changes_nothing(tmp_path, lb):
    spare = inventory().get_host("app3")
    config = lb.check_output("nginx -T")
    path = write_inventory(tmp_path / "hosts.yml",
                           {"loadbalancers": ["lb1"], "backends": ["app1", "app2", "app3"]}, LB_VARS)
    _, output, recap = run_playbook("site.yml", path, "--check", "--diff")
    assert recap["app3"]["changed"] > 0 and recap["lb1"]["changed"] > 0, recap
    assert recap["app1"]["changed"] == 0 and recap["app2"]["changed"] == 0, recap
    assert len(added_servers(output, "app3")) == 1, output[-3000:]
    assert not spare.file(f"/opt/{SERVICE}").exists
    # Neither the settings nor the unit, staged or live.
    assert not spare.file(f"/etc/{SERVICE}").exists
    assert lb.check_output("nginx -T") == config and upstream_servers(lb) == ["app1", "app2"]


def test_check_mode_previews_a_new_load_balancer_and_changes_nothing(tmp_path):
    # app3 has never been converged: nginx is not even installed there.
    spare = inventory().get_host("app3")
    path = write_inventory(tmp_path / "hosts.yml", {"loadbalancers": ["app3"], "backends": ["app1", "app2"]}, LB_VARS)
    # The run that brings a new load balancer up needs only that host: its upstream comes from the inventory.
    _, output, recap = run_playbook("site.yml", path, "--limit", "app3", "--check", "--diff")
    assert recap["app3"]["changed"] > 0, recap
    assert all(len(added_servers(output, name)) == 1 for name in ("app1", "app2")), output[-3000:]
    assert spare.run("dpkg-query -W nginx").rc != 0
    assert not spare.file("/etc/nginx").exists


def test_an_ipv6_backend_address_is_bracketed_and_serves(tmp_path, lb, lb_url):
    # An IPv4-mapped IPv6 address reaches app1 over the scenario's IPv4-only network.
    mapped = f"::ffff:{address_of('app1')}"
    plain = write_inventory(tmp_path / "hosts.yml", {"loadbalancers": ["lb1"], "backends": ["app1", "app2"]}, LB_VARS)
    ipv6 = write_inventory(tmp_path / "ipv6.yml", {"loadbalancers": ["lb1"], "backends": ["app1", "app2"]}, LB_VARS,
                           all_vars={"nginx_lb_backend_address":
                                     f"{{{{ '{mapped}' if inventory_hostname == 'app1' else ansible_host }}}}"})
    try:
        run_playbook("site.yml", ipv6, "--limit", "loadbalancers")
        assert f"server [{mapped}]:8080 weight=1 max_fails=1 fail_timeout=3s;" in upstream_lines(lb)
        answered = Counter(request(f"{lb_url}{PATH}").headers["X-Upstream-Addr"] for _ in range(40))
        assert f"[{mapped}]:8080" in answered, answered
        assert len(answered) == 2, answered
    finally:
        run_playbook("site.yml", plain, "--limit", "loadbalancers")
    assert upstream_servers(lb) == ["app1", "app2"] and not any("::ffff:" in line for line in upstream_lines(lb))


def test_adding_a_backend_puts_it_in_rotation(tmp_path, lb, lb_url, backend_by_address):
    path = write_inventory(tmp_path / "hosts.yml",
                           {"loadbalancers": ["lb1"], "backends": ["app1", "app2", "app3"]}, LB_VARS)
    _, output, recap = run_playbook("site.yml", path)
    assert recap["app3"]["changed"] > 0
    assert upstream_servers(lb) == ["app1", "app2", "app3"]
    # The new backend serves the release the others serve.
    assert request(f"http://{address_of('app3')}:8080{PATH}").json()["version"] == 1
    assert set(served_by(lb_url, backend_by_address)) == {"app1", "app2", "app3"}
    # And the re-run is idempotent again.
    _, _, recap = run_playbook("site.yml", path)
    assert all(counts["changed"] == 0 for counts in recap.values()), recap


def test_removing_a_backend_takes_it_out(tmp_path, lb, lb_url, backend_by_address):
    path = write_inventory(tmp_path / "hosts.yml", {"loadbalancers": ["lb1"], "backends": ["app1", "app2"]}, LB_VARS)
    run_playbook("site.yml", path)
    assert upstream_servers(lb) == ["app1", "app2"]
    assert set(served_by(lb_url, backend_by_address)) == {"app1", "app2"}
