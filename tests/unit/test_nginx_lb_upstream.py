"""The nginx_lb_upstream_peers filter: hostvars in, upstream peers out, bad values refused by name."""

import json

import pytest
from ansible.errors import AnsibleFilterError

from nginx_lb_upstream import FilterModule, nginx_lb_upstream_peers, nginx_lb_other_addresses


def peers(hostvars, **defaults):
    return nginx_lb_upstream_peers(list(hostvars), hostvars, **defaults)


def refusal(hostvars):
    with pytest.raises(AnsibleFilterError) as error:
        peers(hostvars)
    return str(error.value)


def test_the_filter_is_registered_under_its_name():
    assert FilterModule().filters()["nginx_lb_upstream_peers"] is nginx_lb_upstream_peers


def test_a_backend_with_ansible_host_only_gets_the_defaults():
    assert peers({"app1": {"ansible_host": "10.0.0.11"}}, port=8080, max_fails=2, fail_timeout=7) == [{
        "host": "app1", "address": "10.0.0.11", "port": 8080, "endpoint": "10.0.0.11:8080", "weight": 1,
        "max_fails": 2, "fail_timeout": 7, "backup": False, "down": False}]


def test_the_backend_address_wins_over_ansible_host():
    [peer] = peers({"app1": {"ansible_host": "192.0.2.21", "nginx_lb_backend_address": "10.0.0.21"}})
    assert peer["endpoint"] == "10.0.0.21:8080"


def test_the_inventory_name_is_the_address_without_either():
    [peer] = peers({"app1.example.com": {}})
    assert peer["address"] == "app1.example.com" and peer["endpoint"] == "app1.example.com:8080"


def test_the_order_of_the_group_is_kept():
    hostvars = {name: {} for name in ("app3", "app1", "app2")}
    assert [peer["host"] for peer in peers(hostvars)] == ["app3", "app1", "app2"]


@pytest.mark.parametrize("written, endpoint", [
    ("2001:db8::11", "[2001:db8::11]:8080"),
    ("[2001:db8::11]", "[2001:db8::11]:8080"),
    ("::ffff:172.18.0.3", "[::ffff:172.18.0.3]:8080"),
])
def test_an_ipv6_address_is_bracketed_as_written(written, endpoint):
    [peer] = peers({"app1": {"nginx_lb_backend_address": written}})
    assert peer["endpoint"] == endpoint and peer["address"] == written.strip("[]")


def test_per_backend_settings_are_read_and_templated_strings_become_numbers():
    [peer] = peers({"app1": {"nginx_lb_backend_port": "8081", "nginx_lb_backend_weight": 3,
                             "nginx_lb_backend_max_fails": 0, "nginx_lb_backend_fail_timeout": "30",
                             "nginx_lb_backend_backup": "yes", "nginx_lb_backend_down": "false"}})
    assert (peer["port"], peer["weight"], peer["max_fails"], peer["fail_timeout"]) == (8081, 3, 0, 30)
    assert peer["endpoint"] == "app1:8081" and peer["backup"] is True and peer["down"] is False


def test_an_empty_ansible_host_is_named_as_such():
    message = refusal({"app1": {"ansible_host": ""}})
    assert message.startswith("ansible_host of app1 must be a host name or an IP address") and message.endswith('got ""')


@pytest.mark.parametrize("address", ["10.0.0.1:8080", "10.0.0.1 down", "a;b", "[app1]", " 10.0.0.1", "fe80::1%eth0", 12])
def test_an_address_of_the_wrong_shape_is_refused_by_name(address):
    message = refusal({"app1": {"nginx_lb_backend_address": address}})
    assert "nginx_lb_backend_address of app1 must be a host name or an IP address" in message
    assert message.endswith(f"got {json.dumps(address)}")


def test_a_bad_inventory_name_is_named_as_the_address():
    assert "the inventory name of bad;name must be" in refusal({"bad;name": {}})


@pytest.mark.parametrize("variable, value, expected", [
    ("nginx_lb_backend_port", 0, "within 1-65535"),
    ("nginx_lb_backend_port", 65536, "within 1-65535"),
    ("nginx_lb_backend_port", "80a", "within 1-65535"),
    ("nginx_lb_backend_port", True, "within 1-65535"),
    ("nginx_lb_backend_weight", 0, ">= 1"),
    ("nginx_lb_backend_max_fails", -1, ">= 0"),
    ("nginx_lb_backend_fail_timeout", "10s", ">= 0"),
    ("nginx_lb_backend_backup", "maybe", "true or false"),
    ("nginx_lb_backend_down", 2, "true or false"),
])
def test_a_bad_setting_is_refused_with_its_variable_host_and_value(variable, value, expected):
    message = refusal({"app1": {}, "app2": {variable: value}})
    assert message.startswith(f"{variable} of app2 must be") and expected in message and message.endswith(f"got {json.dumps(value)}")


@pytest.mark.parametrize("first, second", [
    ({"ansible_host": "10.0.0.1"}, {"ansible_host": "10.0.0.1"}),
    ({"nginx_lb_backend_address": "2001:db8::1"}, {"nginx_lb_backend_address": "[2001:DB8:0::1]"}),
    ({}, {"nginx_lb_backend_address": "APP1"}),
])
def test_two_backends_at_one_address_and_port_are_refused(first, second):
    message = refusal({"app1": first, "app2": second})
    assert " is used by app1 and app2: backends must not share an address and port" in message


def test_one_address_on_two_ports_is_two_backends():
    hostvars = {"app1": {"ansible_host": "10.0.0.1"}, "app2": {"ansible_host": "10.0.0.1", "nginx_lb_backend_port": 8081}}
    assert [peer["endpoint"] for peer in peers(hostvars)] == ["10.0.0.1:8080", "10.0.0.1:8081"]


def test_an_empty_group_is_an_empty_upstream():
    assert nginx_lb_upstream_peers([], {}) == []


def test_a_string_instead_of_a_list_of_names_is_refused():
    with pytest.raises(AnsibleFilterError, match="needs a list of inventory names"):
        nginx_lb_upstream_peers("app1", {"app1": {}})


def test_the_other_load_balancers_are_reached_at_their_ansible_host_or_name():
    hostvars = {"lb1": {"ansible_host": "10.0.0.1"}, "lb2": {"ansible_host": "2001:db8::2"}, "lb3": {}}
    assert nginx_lb_other_addresses(["lb1", "lb2", "lb3"], hostvars, "lb1") == ["[2001:db8::2]", "lb3"]


def test_a_load_balancer_address_that_could_break_the_config_is_refused():
    with pytest.raises(AnsibleFilterError, match=r'^ansible_host of lb2 must be a host name or an IP address'):
        nginx_lb_other_addresses(["lb1", "lb2"], {"lb1": {}, "lb2": {"ansible_host": "x; return 200"}}, "lb1")
