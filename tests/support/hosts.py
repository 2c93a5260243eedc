"""The hosts of the running Molecule scenario: chosen by inventory group,
reached with testinfra, and the facts the tests read off them."""

import functools
import json
import os
import subprocess

import testinfra.utils.ansible_runner
import yaml

from tests.support import inventory as inventories
from tests.support.playbook import PROJECT_ROOT, ansible_command

SERVICE = "hello-service"


def inventory():
    """The scenario's inventory, as testinfra reads it.

    Read once per test run: testinfra reads an inventory by starting
    `ansible-inventory --list`, about a second of CPU, and the tests ask for
    hosts hundreds of times (in polls too). Molecule's inventory of the
    scenario does not change while the tests run; the inventories the tests
    write for their playbook runs are separate files.
    """
    return testinfra.utils.ansible_runner.AnsibleRunner.get_runner(os.environ["MOLECULE_INVENTORY_FILE"])


def hosts_in(group):
    """Testinfra host specs of an inventory group, for `testinfra_hosts`."""
    return inventory().get_hosts(group)


@functools.cache
def _containers():
    """Inventory name -> container name, from the instance config the scenario's create step wrote."""
    with open(os.environ["MOLECULE_INSTANCE_CONFIG"], encoding="utf-8") as config:
        return {instance["instance"]: instance["container"] for instance in yaml.safe_load(config)}


def container_of(name):
    """The Docker container of the inventory host NAME, for what only docker does (kill, inspect, exec as a
    client inside it)."""
    return _containers()[name]


def address_of(name):
    """The address the inventory gives NAME (ansible_host): what Ansible connects to and what the load
    balancers' upstream names, unless a test's inventory says otherwise."""
    return inventory().get_variables(name)["ansible_host"]


# The variables that say how Ansible reaches a host, copied from Molecule's inventory.
CONNECTION_VARIABLES = ("ansible_host", "ansible_port", "ansible_user", "ansible_connection",
                        "ansible_private_key_file", "ansible_ssh_common_args")


def connection_of(name):
    """How Molecule's inventory reaches NAME, for the inventories the tests write."""
    variables = inventory().get_variables(name)
    return {key: variables[key] for key in CONNECTION_VARIABLES if key in variables}


def scenario_group_vars():
    """The group variables the scenario's own inventory sets (the shared Molecule config, then the
    scenario's molecule.yml), so that the inventories the tests write deploy the same app the same way."""
    merged = {}
    scenario = PROJECT_ROOT / "molecule" / os.environ.get("MOLECULE_SCENARIO_NAME", "default") / "molecule.yml"
    for config in (PROJECT_ROOT / ".config" / "molecule" / "config.yml", scenario):
        if config.is_file():
            group_vars = (((inventories.read(config) or {}).get("provisioner") or {}).get("inventory") or {}).get(
                "group_vars") or {}
            for group, variables in group_vars.items():
                merged.setdefault(group, {}).update(variables or {})
    return merged


def write_inventory(path, groups, group_vars=None, host_vars=None, all_vars=None):
    """An inventory of the scenario's containers with the given group membership and variables, on top of
    the group variables of the scenario's own inventory. The scenario's monitoring hosts come along unless
    GROUPS names that group: the backends let them read the metrics, and a run without them would rewrite that."""
    if "monitoring" not in groups and inventory().get_hosts("monitoring"):
        groups = {**groups, "monitoring": inventory().get_hosts("monitoring")}
    members = {
        group: {name: {**connection_of(name), **(host_vars or {}).get(name, {})} for name in names}
        for group, names in groups.items()
    }
    variables = scenario_group_vars()
    for group, extra in (group_vars or {}).items():
        variables.setdefault(group, {}).update(extra)
    all_vars = {**variables.pop("all", {}), **(all_vars or {})}
    return inventories.write(path, inventories.document(
        members, {group: values for group, values in variables.items() if group in groups}, all_vars or None))


def journal(host, unit=SERVICE, lines=60):
    """The unit's recent log, to print when a service check fails."""
    return host.run(f"journalctl -u {unit} -n {lines} --no-pager").stdout


def nginx_reloads(lb_host, since):
    """How many times nginx on LB_HOST was reloaded since SINCE (seconds since the epoch, the host's clock):
    each reload closes the clients' idle kept-alive connections."""
    log = lb_host.check_output(f"journalctl -u nginx -o cat --no-pager --since @{int(since)}")
    return sum(1 for line in log.splitlines() if line.startswith("Reloaded "))


def healthz(host):
    """The backend's /healthz answer, asked on the host itself."""
    return json.loads(host.check_output(
        "python3 -c \"import urllib.request;"
        "print(urllib.request.urlopen('http://127.0.0.1:8080/healthz').read().decode())\""))


def listening_sockets(host):
    """A host's listening TCP sockets, as ss prints them ("0.0.0.0:8080", "10.0.0.5:8080", "[::]:8080")."""
    return {line.split()[3] for line in host.check_output("ss -Htln").splitlines()}


def gunicorn_pids(backend):
    """The service's main process id and its workers' ids on BACKEND (an inventory name or a testinfra host)."""
    host = inventory().get_host(backend) if isinstance(backend, str) else backend
    main = host.check_output(f"systemctl show -p MainPID --value {SERVICE}")
    workers = set(host.check_output(f"ps -o pid= --ppid {main}").split())
    return main, workers


def upstream_peers(lb):
    """The backend addresses the load balancer holds an open connection to (kept alive, or still in use)."""
    lines = lb.check_output("ss -Htn state established '( dport = :8080 )'").splitlines()
    return {line.split()[-1].rsplit(":", 1)[0] for line in lines}


def connection_header(host, port=8080):
    """The Connection header of the service's answer to one HTTP/1.1 request, asked on the host itself."""
    return host.check_output(
        "python3 -c \"import http.client; c = http.client.HTTPConnection('127.0.0.1', %d);"
        " c.request('GET', '/requestme'); print(c.getresponse().getheader('Connection'))\"" % port)


def rotation(lb, **arguments):
    """The load balancer's rotation as nginx_lb_rotation reports it: run ad hoc on LB (an inventory name),
    a read-only query unless `arguments` ask for a change (state=drained, backends=[...])."""
    command, env, cwd = ansible_command(
        "ansible", lb, "-i", os.environ["MOLECULE_INVENTORY_FILE"],
        "-M", str(PROJECT_ROOT / "roles" / "nginx_lb" / "library"),
        "-m", "nginx_lb_rotation", "-a", json.dumps({"site": SERVICE, **arguments}))
    # The role's module_utils, which a role's own tasks would find beside its library.
    env.update(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
               ANSIBLE_MODULE_UTILS=str(PROJECT_ROOT / "roles" / "nginx_lb" / "module_utils"))
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    # The json callback's document; the project's task timer prints a line of its own before it.
    start = 0 if result.stdout.startswith("{") else result.stdout.index("\n{") + 1
    document, _ = json.JSONDecoder().raw_decode(result.stdout[start:])
    return document["plays"][0]["tasks"][0]["hosts"][lb]


def inventory_name(testinfra_host):
    """The inventory name of a testinfra host, which testinfra knows by its address."""
    hostname = testinfra_host.backend.get_hostname()
    return next((name for name in inventory().get_hosts("all") if address_of(name) == hostname), hostname)


def upstream_servers(lb):
    """The backends of the load balancer's upstream (inventory names), as its rotation state holds them.
    LB: an inventory name or a testinfra host."""
    return sorted(peer["host"] for peer in rotation(lb if isinstance(lb, str) else inventory_name(lb))["peers"])


def upstream_lines(lb_host):
    """The backends' server lines as nginx itself reads them (`nginx -T`, the file the rotation module
    writes, <site>.upstream), stripped: not the other upstreams' (the load balancers' ACME relay)."""
    lines, in_upstream_file = [], False
    for line in (line.strip() for line in lb_host.check_output("nginx -T").splitlines()):
        if line.startswith("# configuration file "):
            in_upstream_file = line.endswith(".upstream:")
        elif in_upstream_file and line.startswith("server ") and line.endswith(";"):
            lines.append(line)
    return lines


def drained_endpoints(lb_host):
    """The address:port of every upstream server nginx has marked down."""
    return [line.split()[1] for line in upstream_lines(lb_host) if line.endswith(" down;")]
