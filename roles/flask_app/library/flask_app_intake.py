#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Refuse or accept new connections to a backend's service, so that a rollout drains it without an nginx reload."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: flask_app_intake
short_description: Refuse new connections to a service from the network while it is out of rotation, or accept them
description:
  - C(refused) adds an nftables table of the service's own, C(flask_app_intake_NAME), that answers every new
    TCP connection to I(ports) from another host with a reset. Connections already open go on: requests in
    flight finish and the service's graceful stop answers what comes on a kept-alive connection with
    C(Connection: close). Loopback is not refused, so the host's health checks go on.
  - A load balancer whose connection is refused has sent nothing yet, so nginx passes the request to another
    backend whatever its method, and counts the backend as failed for its C(fail_timeout). No reload of
    nginx is needed, so no client connection of the load balancer is closed.
  - The table records the addresses it refused. C(open) removes the table, and with I(readmit_timeout) waits
    until each of those addresses has a connection to the service again (the load balancer sends to the
    backend again), at most that many seconds: nginx takes a failed backend back only once its fail_timeout
    has passed.
  - Needs the C(nft) command and CAP_NET_ADMIN (root on a host; a container needs the capability).
  - Supports check mode.
options:
  name:
    description: The service's name (flask_app_name); the table is named after it.
    type: str
    required: true
  ports:
    description:
      - TCP ports the service listens on. Required with C(refused).
      - With C(open), the ports to watch for the refused addresses' connections; default the ones refused.
    type: list
    elements: int
    default: []
  state:
    description: C(refused), C(open), or C(query) (reports, changes nothing).
    type: str
    choices: [refused, open, query]
    default: query
  readmit_timeout:
    description:
      - With C(open), seconds to wait at most for every refused address to connect again; 0 waits for nothing.
      - Set it above the load balancers' fail_timeout.
    type: int
    default: 0
"""

EXAMPLES = r"""
- name: Refuse new connections to the service
  flask_app_intake:
    name: hello-service
    ports: [8080]
    state: refused

- name: Accept them again, once the load balancers send again
  flask_app_intake:
    name: hello-service
    state: open
    readmit_timeout: 4
"""

RETURN = r"""
refusing:
  description: Whether new connections from the network are refused after the task.
  type: bool
  returned: always
ports:
  description: The ports refused (before C(open) removed the table).
  type: list
  elements: int
  returned: always
refused_from:
  description: The addresses that were refused a connection while the table was in place.
  type: list
  elements: str
  returned: always
readmitted:
  description: With C(open), the refused addresses seen connected again within I(readmit_timeout).
  type: list
  elements: str
  returned: always
waited:
  description: With C(open), seconds spent waiting for them.
  type: float
  returned: always
"""

import ipaddress
import json
import re
import time

from ansible.module_utils.basic import AnsibleModule

NAME_SHAPE = re.compile(r"[a-z][a-z0-9-]{0,30}\Z")
FAMILIES = (("ipv4", "ip"), ("ipv6", "ip6"))


class Refused(Exception):
    """A request this module will not carry out; the message says why."""


def table_name(name):
    if not isinstance(name, str) or not NAME_SHAPE.match(name):
        raise Refused(f"name must be a service name ({NAME_SHAPE.pattern}), got {name!r}")
    return "flask_app_intake_" + name.replace("-", "_")


def check_ports(ports):
    if not ports:
        raise Refused("state=refused needs the service's ports")
    for port in ports:
        if not 1 <= port <= 65535:
            raise Refused(f"ports: each must be a TCP port from 1 to 65535, got {port!r}")
    return sorted(set(ports))


def ruleset(table, ports):
    """nft -f input that replaces the table at once (declare, delete, define: one transaction)."""
    elements = ", ".join(str(port) for port in ports)
    lines = [f"table inet {table}", f"delete table inet {table}", f"table inet {table} {{",
             f"  set ports {{ type inet_service; elements = {{ {elements} }}; }}"]
    lines += [f"  set refused_{family} {{ type {family}_addr; flags dynamic; size 4096; }}" for family, _ in FAMILIES]
    lines += ["  chain input {",
              "    type filter hook input priority filter - 1; policy accept;",
              '    iif "lo" accept']
    # A connection's first packet only (SYN without ACK): no connection tracking, so connections open before the
    # table keep going whatever conntrack would make of them.
    lines += [f"    meta nfproto {family} tcp dport @ports tcp flags & (syn | ack) == syn"
              f" add @refused_{family} {{ {selector} saddr }} reject with tcp reset" for family, selector in FAMILIES]
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def set_elements(document, name):
    """The elements of set NAME in `nft -j list table` output, as strings."""
    for entry in document.get("nftables", []):
        found = entry.get("set")
        if found and found.get("name") == name:
            values = []
            for element in found.get("elem", []):
                if isinstance(element, dict):
                    element = element.get("elem", {}).get("val", element)
                values.append(str(element))
            return values
    return []


def peers(ss_output):
    """The peer addresses of `ss --no-header --numeric --tcp state established` lines (IPv4-mapped as IPv4)."""
    found = set()
    for line in ss_output.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        address = fields[3].rsplit(":", 1)[0].strip("[]").split("%", 1)[0]
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            continue
        if ip.version == 6 and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        found.add(str(ip))
    return found


class Host:
    """The calls to the host: the seam unit tests replace."""

    def __init__(self, module):
        self.module = module

    def table(self, table):
        """The table as `nft -j` lists it, or None where there is none (or no nft, as on a host not staged
        yet: a dry run's)."""
        if self.module.get_bin_path("nft") is None:
            return None
        rc, out, err = self.module.run_command(["nft", "-j", "list", "table", "inet", table])
        if rc != 0:
            if "No such file or directory" in err or "does not exist" in err:
                return None
            raise Refused(f"nft cannot list the table {table}: {err.strip() or out.strip()}")
        return json.loads(out)

    def load(self, text):
        if self.module.get_bin_path("nft") is None:
            raise Refused("nft is not installed: the flask_app role installs nftables when it stages the host")
        rc, out, err = self.module.run_command(["nft", "-f", "-"], data=text, binary_data=True)
        if rc != 0:
            raise Refused(f"nft refused the table: {err.strip() or out.strip()}")

    def delete(self, table):
        rc, out, err = self.module.run_command(["nft", "delete", "table", "inet", table])
        if rc != 0:
            raise Refused(f"nft cannot delete the table {table}: {err.strip() or out.strip()}")

    def connected(self, ports):
        """Addresses with an established connection to one of `ports`."""
        selector = " or ".join(f"sport = :{port}" for port in ports)
        rc, out, err = self.module.run_command(
            ["ss", "--no-header", "--numeric", "--tcp", "state", "established", f"( {selector} )"])
        if rc != 0:
            raise Refused(f"ss failed: {err.strip() or out.strip()}")
        return peers(out)

    sleep = staticmethod(time.sleep)
    clock = staticmethod(time.monotonic)


def current(host, table):
    document = host.table(table)
    if document is None:
        return None
    refused = set_elements(document, "refused_ipv4") + set_elements(document, "refused_ipv6")
    return {"ports": sorted(int(port) for port in set_elements(document, "ports")), "refused_from": sorted(refused)}


def wait_for(host, ports, addresses, timeout):
    """(readmitted, seconds waited): the addresses among `addresses` seen connected to `ports`."""
    start = host.clock()
    seen = set()
    while addresses and ports:
        seen |= host.connected(ports) & set(addresses)
        if seen >= set(addresses) or host.clock() - start >= timeout:
            break
        host.sleep(0.2)
    return sorted(seen), round(host.clock() - start, 2)


def apply(module, host, params):
    table = table_name(params["name"])
    before = current(host, table)
    result = {"changed": False, "refusing": before is not None, "ports": before["ports"] if before else [],
              "refused_from": before["refused_from"] if before else [], "readmitted": [], "waited": 0.0}
    if params["state"] == "refused":
        ports = check_ports(params["ports"])
        if before is None or before["ports"] != ports:
            result.update(changed=True, refusing=True, ports=ports)
            if not module.check_mode:
                host.load(ruleset(table, ports))
    elif params["state"] == "open" and before is not None:
        result.update(changed=True, refusing=False)
        if not module.check_mode:
            host.delete(table)
            if params["readmit_timeout"] > 0:
                # The ports the service listens on now: a switch may have moved it.
                result["readmitted"], result["waited"] = wait_for(
                    host, sorted(set(params["ports"])) or before["ports"], before["refused_from"],
                    params["readmit_timeout"])
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "ports": {"type": "list", "elements": "int", "default": []},
            "state": {"type": "str", "choices": ["refused", "open", "query"], "default": "query"},
            "readmit_timeout": {"type": "int", "default": 0},
        },
        supports_check_mode=True,
    )
    try:
        if module.params["readmit_timeout"] < 0:
            raise Refused(f"readmit_timeout must be 0 or more, got {module.params['readmit_timeout']}")
        module.exit_json(**apply(module, Host(module), module.params))
    except Refused as error:
        module.fail_json(msg=str(error))


if __name__ == "__main__":
    main()
