# -*- coding: utf-8 -*-
"""The load balancers' upstream peers, from the backend group's inventory hostvars.

    {{ groups[nginx_lb_backend_group] | nginx_lb_upstream_peers(hostvars, port=8080, max_fails=1, fail_timeout=10) }}

Hostvars, not gathered facts: `--limit loadbalancers` renders the same list
as a full run. Every value that lands in nginx's config is checked here, and
a bad one fails the task with the variable, the host and the value.
"""

from __future__ import annotations

import ipaddress
import json
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

# A DNS name (labels of letters, digits, '-' and '_'), or an IPv4 address.
HOST_NAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\Z")

# The per-backend inputs: (host variable, lowest value).
INTEGERS = (
    ("nginx_lb_backend_port", 1),
    ("nginx_lb_backend_weight", 1),
    ("nginx_lb_backend_max_fails", 0),
    ("nginx_lb_backend_fail_timeout", 0),
)
FLAGS = ("nginx_lb_backend_backup", "nginx_lb_backend_down")


def _bad(host, variable, value, expected):
    # As YAML or JSON would write it: "10.0.0.11:8080", 0, true.
    try:
        shown = json.dumps(value)
    except TypeError:
        shown = repr(value)
    return AnsibleFilterError(f"{variable} of {host} must be {expected}, got {shown}")


def _integer(host, variable, value, lowest, highest=None):
    # A templated value ("{{ flask_app_port }}") may arrive as its string.
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        value = int(value)
    # bool is an int to Python, never a port or a weight to a user.
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest or \
            (highest is not None and value > highest):
        expected = f"an integer within {lowest}-{highest}" if highest else f"an integer >= {lowest}"
        raise _bad(host, variable, value, expected)
    return value


def _flag(host, variable, value):
    try:
        return boolean(value, strict=True)
    except TypeError:
        raise _bad(host, variable, value, "true or false") from None


def _address(host, variable, value):
    """(address as written, its canonical form): the latter finds duplicates written two ways."""
    if not isinstance(value, str):
        raise _bad(host, variable, value, "a host name or an IP address (IPv6 with or without brackets, no port)")
    address = value
    bracketed = address.startswith("[") and address.endswith("]")
    bare = address[1:-1] if bracketed else address
    try:
        # A zone ("%eth0") is no part of an address nginx takes.
        if "%" not in bare:
            return bare, ipaddress.IPv6Address(bare).compressed
    except ValueError:
        pass
    if not bracketed and HOST_NAME.match(address):
        try:
            return address, str(ipaddress.IPv4Address(address))
        except ValueError:
            return address, address.lower().rstrip(".")
    raise _bad(host, variable, value, "a host name or an IP address (IPv6 with or without brackets, no port)")


def _host_address(host, hostvars, own_variable):
    """(address as written, its canonical form) of a host: OWN_VARIABLE (if any), else ansible_host, else its name."""
    if own_variable is not None and own_variable in hostvars:
        variable = own_variable
    elif "ansible_host" in hostvars:
        variable = "ansible_host"
    else:
        # The inventory name is the address: a bad one is named as such.
        variable = "the inventory name"
    return _address(host, variable, hostvars[variable] if variable in hostvars else host)


def upstream_peer(host, hostvars, port, max_fails, fail_timeout):
    """One backend's peer; `hostvars` is that host's variables."""
    address, canonical = _host_address(host, hostvars, "nginx_lb_backend_address")
    defaults = {
        "nginx_lb_backend_port": port,
        "nginx_lb_backend_weight": 1,
        "nginx_lb_backend_max_fails": max_fails,
        "nginx_lb_backend_fail_timeout": fail_timeout,
    }
    values = {}
    for variable, lowest in INTEGERS:
        value = hostvars[variable] if variable in hostvars else defaults[variable]
        values[variable] = _integer(host, variable, value, lowest, 65535 if variable.endswith("_port") else None)
    flags = {variable: _flag(host, variable, hostvars[variable] if variable in hostvars else False)
             for variable in FLAGS}
    # nginx reads an IPv6 address only in brackets: [2001:db8::11]:8080.
    bracketed = f"[{address}]" if ":" in address else address
    return {
        "host": host,
        "address": address,
        "port": values["nginx_lb_backend_port"],
        "endpoint": f"{bracketed}:{values['nginx_lb_backend_port']}",
        "weight": values["nginx_lb_backend_weight"],
        "max_fails": values["nginx_lb_backend_max_fails"],
        "fail_timeout": values["nginx_lb_backend_fail_timeout"],
        "backup": flags["nginx_lb_backend_backup"],
        "down": flags["nginx_lb_backend_down"],
        "_canonical": f"{canonical}:{values['nginx_lb_backend_port']}",
    }


def nginx_lb_upstream_peers(hosts, hostvars, port=8080, max_fails=1, fail_timeout=10):
    """The upstream peers of `hosts` (inventory names, in order), read from `hostvars`.

    `port`, `max_fails` and `fail_timeout` apply to a backend that does not set
    its own nginx_lb_backend_port, _max_fails or _fail_timeout. Two backends at
    the same address and port are refused, however the address is written.
    """
    if isinstance(hosts, str) or not all(isinstance(host, str) for host in hosts or []):
        raise AnsibleFilterError(f"nginx_lb_upstream_peers needs a list of inventory names, got {hosts!r}")
    peers, seen = [], {}
    for host in hosts or []:
        peer = upstream_peer(host, hostvars[host], port, max_fails, fail_timeout)
        canonical = peer.pop("_canonical")
        if canonical in seen:
            raise AnsibleFilterError(
                f"{peer['endpoint']} is used by {seen[canonical]} and {host}: backends must not share an "
                "address and port; set nginx_lb_backend_address or nginx_lb_backend_port apart")
        seen[canonical] = host
        peers.append(peer)
    return peers


def nginx_lb_other_addresses(hosts, hostvars, this_host):
    """The addresses nginx reaches the other load balancers of `hosts` at (IPv6 in brackets).

    Each is the host's ansible_host, else its inventory name, checked like a
    backend's address.
    """
    addresses = []
    for host in hosts or []:
        if host != this_host:
            address = _host_address(host, hostvars[host], None)[0]
            addresses.append(f"[{address}]" if ":" in address and not address.startswith("[") else address)
    return addresses


class FilterModule:
    def filters(self):
        return {"nginx_lb_upstream_peers": nginx_lb_upstream_peers, "nginx_lb_other_addresses": nginx_lb_other_addresses}
