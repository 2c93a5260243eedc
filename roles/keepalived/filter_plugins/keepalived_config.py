# -*- coding: utf-8 -*-
"""What the keepalived role renders and refuses, decided in Python.

keepalived_input_errors names each bad input and its value. keepalived_host_errors
checks the floating addresses against the group's hosts, from their network
facts and the inventory: two hosts or more, every address inside a network
of every host, no address a host already uses. keepalived_instance is what
one host's VRRP instance says: the interface, the address it speaks from,
its peers (every other host of the group, read from facts, so that `--limit`
cannot shrink the list) and each floating address with its prefix.
"""

from __future__ import annotations

import ipaddress
import re

# A health check keepalived runs with curl: an http URL on the host itself.
CHECK_URL = re.compile(r"http://(127\.0\.0\.1|localhost|\[::1\]):[0-9]{1,5}(/[A-Za-z0-9._~/-]*)?\Z")
# Bounds of the numeric inputs: (low, high), both allowed.
BOUNDS = {
    "keepalived_virtual_router_id": (1, 255),
    "keepalived_priority": (1, 254),
    # VRRP version 3 counts the interval in centiseconds, up to 4095.
    "keepalived_advert_interval": (0.05, 40.95),
    "keepalived_check_interval": (1, 60),
    "keepalived_check_fall": (1, 10),
    "keepalived_check_rise": (1, 10),
}
# The bounds that only take whole numbers.
WHOLE = {"keepalived_virtual_router_id", "keepalived_priority", "keepalived_check_interval",
         "keepalived_check_fall", "keepalived_check_rise"}


def _problem(variable, value, expected):
    return "%s=%r: %s" % (variable, value, expected)


def _number(value, whole):
    """VALUE as an int (WHOLE) or a float, or None when it is not one (booleans are not numbers)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if whole:
        return int(number) if number == int(number) and "." not in str(value) else None
    return number


def _ipv4(value):
    try:
        return ipaddress.IPv4Address(str(value))
    except ValueError:
        return None


def input_errors(inputs):
    """One message per bad input, naming it and its value."""
    errors = []
    addresses = inputs.get("keepalived_virtual_addresses")
    if not isinstance(addresses, list):
        errors.append(_problem("keepalived_virtual_addresses", addresses, "expected a list of IPv4 addresses"))
        addresses = []
    for address in addresses:
        if _ipv4(address) is None:
            errors.append(_problem("keepalived_virtual_addresses", address,
                                   "expected an IPv4 address without a prefix, such as 192.0.2.10"))
    repeated = sorted({str(address) for address in addresses if addresses.count(address) > 1})
    if repeated:
        errors.append(_problem("keepalived_virtual_addresses", repeated, "listed more than once"))
    for name, (low, high) in BOUNDS.items():
        value = inputs.get(name)
        number = _number(value, name in WHOLE)
        if number is None or not low <= number <= high:
            kind = "a whole number" if name in WHOLE else "a number"
            errors.append(_problem(name, value, "expected %s from %s to %s" % (kind, low, high)))
    url = inputs.get("keepalived_check_url")
    if not isinstance(url, str) or not CHECK_URL.match(url):
        errors.append(_problem("keepalived_check_url", url,
                               "expected an http URL on loopback, such as http://127.0.0.1:8081/stub_status"))
    return errors


def _networks(facts):
    """Each IPv4 interface of a host's network facts, but loopback: [(device, primary address, network)]."""
    found = []
    for name in facts.get("interfaces") or []:
        interface = facts.get(name) or facts.get(re.sub(r"[^A-Za-z0-9_]", "_", name)) or {}
        primary = interface.get("ipv4") or {}
        if not primary.get("address") or interface.get("type") == "loopback" or name == "lo":
            continue
        network = ipaddress.IPv4Network("%s/%s" % (primary["address"], primary.get("netmask", "32")), strict=False)
        found.append((interface.get("device", name), ipaddress.IPv4Address(primary["address"]), network))
    return sorted(found, key=lambda entry: entry[0])


def _facts(host, hostvars):
    return (hostvars.get(host) or {}).get("ansible_facts") or {}


def _holder(address, networks):
    """The (device, primary address, network) of NETWORKS whose network holds ADDRESS, or None."""
    return next((entry for entry in networks if address in entry[2]), None)


def host_errors(hosts, hostvars, addresses, group):
    """What keeps ADDRESSES from floating between HOSTS (the group GROUP), one message each."""
    addresses = [_ipv4(address) for address in addresses or []]
    if not addresses or None in addresses:
        return []
    shown = ", ".join(str(address) for address in addresses)
    if len(hosts) < 2:
        return ["keepalived_virtual_addresses=[%s]: a floating address needs two hosts or more in group %r, "
                "which has %s" % (shown, group, ", ".join(hosts) or "none")]
    errors = []
    # Every host's own addresses: the inventory's, and each primary address its facts show.
    used = {}
    for host in sorted(hostvars):
        inventory_address = _ipv4((hostvars.get(host) or {}).get("ansible_host"))
        if inventory_address is not None:
            used.setdefault(inventory_address, "%s's ansible_host" % host)
    for host in hosts:
        networks = _networks(_facts(host, hostvars))
        if not networks:
            errors.append("%s: no IPv4 network facts; keepalived_virtual_addresses=[%s] cannot be placed" % (host, shown))
            continue
        for device, primary, _network in networks:
            used.setdefault(primary, "%s's address on %s" % (host, device))
        for address in addresses:
            holder = _holder(address, networks)
            if holder is None:
                errors.append("keepalived_virtual_addresses: %s is outside %s's networks (%s)" % (
                    address, host, ", ".join("%s on %s" % (network, device) for device, _primary, network in networks)))
            elif address in (holder[2].network_address, holder[2].broadcast_address):
                errors.append("keepalived_virtual_addresses: %s is %s's network or broadcast address on %s" % (
                    address, host, holder[0]))
    for address in addresses:
        if address in used:
            errors.append("keepalived_virtual_addresses: %s is already in use: %s" % (address, used[address]))
    return errors


def instance(host, hosts, hostvars, addresses):
    """HOST's VRRP instance: {interface, source, peers, addresses: [{address, prefix, interface}]}.

    The instance speaks on the interface of the first floating address, from
    the host's address there, to every other host's address in that network.
    """
    networks = _networks(_facts(host, hostvars))
    placed = []
    for address in addresses:
        device, _primary, network = _holder(ipaddress.IPv4Address(str(address)), networks)
        placed.append({"address": str(address), "prefix": network.prefixlen, "interface": device})
    device, source, network = _holder(ipaddress.IPv4Address(str(addresses[0])), networks)
    peers = []
    for peer in hosts:
        if peer != host:
            holder = _holder(ipaddress.IPv4Address(str(addresses[0])), _networks(_facts(peer, hostvars)))
            peers.append(str(holder[1]))
    return {"interface": device, "source": str(source), "peers": sorted(peers, key=ipaddress.IPv4Address),
            "addresses": placed}


class FilterModule:
    """The keepalived role's filters."""

    def filters(self):
        return {
            "keepalived_input_errors": input_errors,
            "keepalived_host_errors": host_errors,
            "keepalived_instance": instance,
        }
