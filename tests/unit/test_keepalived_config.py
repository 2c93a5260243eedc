"""The keepalived role's decisions: bad inputs, addresses the group cannot float, each host's VRRP instance."""

import pathlib

import yaml

from keepalived_config import FilterModule, host_errors, input_errors, instance

DEFAULTS = yaml.safe_load((pathlib.Path(__file__).resolve().parents[2] / "roles" / "keepalived" / "defaults"
                           / "main.yml").read_text(encoding="utf-8"))


def facts(address, prefix=24, device="eth0", secondaries=()):
    """Network facts as Ansible's setup module gathers them: loopback, and DEVICE with ADDRESS."""
    netmask = str(__import__("ipaddress").IPv4Network("0.0.0.0/%d" % prefix).netmask)
    return {"ansible_facts": {
        "interfaces": ["lo", device],
        "lo": {"device": "lo", "type": "loopback", "ipv4": {"address": "127.0.0.1", "netmask": "255.0.0.0"}},
        device.replace("-", "_"): {"device": device, "type": "ether",
                                   "ipv4": {"address": address, "netmask": netmask},
                                   "ipv4_secondaries": [{"address": entry, "netmask": netmask} for entry in secondaries]},
    }}


HOSTS = ["lb1", "lb2"]
HOSTVARS = {"lb1": facts("10.0.5.11"), "lb2": facts("10.0.5.12"), "app1": {"ansible_host": "10.0.5.21"}}


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"keepalived_input_errors", "keepalived_host_errors", "keepalived_instance"}


def test_the_defaults_pass():
    assert input_errors(DEFAULTS) == []


def test_a_bad_address_is_named_with_its_value():
    errors = input_errors(dict(DEFAULTS, keepalived_virtual_addresses=["10.0.5.300", "10.0.5.0/24", "fe80::1"]))
    assert len(errors) == 3
    assert all(error.startswith("keepalived_virtual_addresses=") for error in errors)
    assert "'10.0.5.0/24'" in errors[1]


def test_an_address_listed_twice_is_refused():
    assert input_errors(dict(DEFAULTS, keepalived_virtual_addresses=["10.0.5.100", "10.0.5.100"])) == [
        "keepalived_virtual_addresses=['10.0.5.100']: listed more than once"]


def test_numbers_out_of_bounds_are_named():
    errors = input_errors(dict(DEFAULTS, keepalived_virtual_router_id=256, keepalived_priority=255,
                               keepalived_advert_interval=0.01, keepalived_check_fall="2.5",
                               keepalived_check_rise=True))
    assert [error.partition("=")[0] for error in errors] == [
        "keepalived_virtual_router_id", "keepalived_priority", "keepalived_advert_interval",
        "keepalived_check_fall", "keepalived_check_rise"]


def test_a_fractional_advert_interval_passes():
    assert input_errors(dict(DEFAULTS, keepalived_advert_interval="0.2")) == []


def test_a_check_url_cannot_add_a_directive():
    for url in ['http://127.0.0.1:8081/ok"\n}\nvrrp_script x {', "http://example.com/", "file:///etc/shadow",
                "http://127.0.0.1:8081/a b"]:
        errors = input_errors(dict(DEFAULTS, keepalived_check_url=url))
        assert len(errors) == 1 and errors[0].startswith("keepalived_check_url="), url


def test_two_hosts_with_an_address_in_their_network_pass():
    assert host_errors(HOSTS, HOSTVARS, ["10.0.5.200"], "loadbalancers") == []


def test_no_address_means_nothing_to_check():
    assert host_errors(["lb1"], HOSTVARS, [], "loadbalancers") == []


def test_a_single_host_is_refused_naming_the_group():
    (error,) = host_errors(["lb1"], HOSTVARS, ["10.0.5.200"], "loadbalancers")
    assert "keepalived_virtual_addresses=[10.0.5.200]" in error
    assert "two hosts or more in group 'loadbalancers', which has lb1" in error


def test_an_address_outside_a_hosts_network_is_refused():
    hostvars = dict(HOSTVARS, lb2=facts("10.0.6.12"))
    assert host_errors(HOSTS, hostvars, ["10.0.5.200"], "loadbalancers") == [
        "keepalived_virtual_addresses: 10.0.5.200 is outside lb2's networks (10.0.6.0/24 on eth0)"]


def test_an_address_a_host_uses_is_refused():
    assert host_errors(HOSTS, HOSTVARS, ["10.0.5.12"], "loadbalancers") == [
        "keepalived_virtual_addresses: 10.0.5.12 is already in use: lb2's address on eth0"]
    assert host_errors(HOSTS, HOSTVARS, ["10.0.5.21"], "loadbalancers") == [
        "keepalived_virtual_addresses: 10.0.5.21 is already in use: app1's ansible_host"]


def test_the_address_a_host_holds_now_is_not_in_use():
    hostvars = dict(HOSTVARS, lb1=facts("10.0.5.11", secondaries=["10.0.5.200"]))
    assert host_errors(HOSTS, hostvars, ["10.0.5.200"], "loadbalancers") == []


def test_the_network_and_broadcast_addresses_are_refused():
    errors = host_errors(HOSTS, HOSTVARS, ["10.0.5.0", "10.0.5.255"], "loadbalancers")
    assert len(errors) == 4 and all("network or broadcast address" in error for error in errors)


def test_a_host_without_network_facts_is_named():
    assert host_errors(HOSTS, dict(HOSTVARS, lb2={}), ["10.0.5.200"], "loadbalancers") == [
        "lb2: no IPv4 network facts; keepalived_virtual_addresses=[10.0.5.200] cannot be placed"]


def test_an_instance_speaks_to_every_other_host_of_the_group():
    hostvars = dict(HOSTVARS, lb3=facts("10.0.5.9"))
    assert instance("lb1", ["lb1", "lb2", "lb3"], hostvars, ["10.0.5.200"]) == {
        "interface": "eth0", "source": "10.0.5.11", "peers": ["10.0.5.9", "10.0.5.12"],
        "addresses": [{"address": "10.0.5.200", "prefix": 24, "interface": "eth0"}]}


def test_an_instance_finds_the_interface_of_each_address():
    hostvars = {"lb1": facts("10.0.5.11", prefix=16, device="br-lan"), "lb2": facts("10.0.5.12", prefix=16, device="ens3")}
    result = instance("lb2", HOSTS, hostvars, ["10.0.9.1", "10.0.9.2"])
    assert result["interface"] == "ens3" and result["peers"] == ["10.0.5.11"]
    assert result["addresses"] == [{"address": "10.0.9.1", "prefix": 16, "interface": "ens3"},
                                   {"address": "10.0.9.2", "prefix": 16, "interface": "ens3"}]
