"""Shared fixtures and helpers for every scenario's testinfra tests.

Hosts are chosen by inventory group, and HTTP goes from this machine straight
to the load balancer container on the scenario's own Docker network: real
requests through the real nginx to the real Gunicorn.
"""

import json
import os
import shutil
import subprocess
import sys
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


def healthz(host):
    """The backend's /healthz answer, asked on the host itself."""
    return json.loads(host.check_output(
        "python3 -c \"import urllib.request;"
        "print(urllib.request.urlopen('http://127.0.0.1:8080/healthz').read().decode())\""))


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
    """Maps "ip:port" as nginx reports it in X-Upstream-Addr to the inventory name of every
    non-load-balancer host of the scenario (spares included, which a test may add as backends)."""
    runner = inventory()
    hosts = set(runner.get_hosts("all")) - set(runner.get_hosts("loadbalancers"))
    return {f"{container_ip(container_of(name))}:8080": name for name in hosts}


@pytest.fixture(scope="session")
def backend_host():
    """A testinfra host for a backend by inventory name."""
    runner = inventory()
    return lambda name: runner.get_host(name)


PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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


def write_inventory(path, groups, group_vars=None, host_vars=None):
    """An inventory of the scenario's containers with the given group membership (and variables).

    The scenario's own group variables (the provisioner inventory's, which
    name the app to deploy) come along, in a group_vars directory beside it.
    """
    scenario_vars = os.path.join(os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"]), "group_vars")
    if os.path.isdir(scenario_vars):
        shutil.copytree(scenario_vars, os.path.join(os.path.dirname(path), "group_vars"), dirs_exist_ok=True)
    lines = ["all:", "  children:"]
    for group, members in groups.items():
        lines.append(f"    {group}:")
        lines.append("      hosts:" if members else "      hosts: {}")
        for name in members:
            lines += [f"        {name}:", f"          ansible_host: {container_of(name)}",
                      "          ansible_connection: community.docker.docker", "          ansible_user: root"]
            lines += [f"          {key}: {json.dumps(value)}" for key, value in (host_vars or {}).get(name, {}).items()]
        if group_vars and group in group_vars:
            lines.append("      vars:")
            lines += [f"        {key}: {json.dumps(value)}" for key, value in group_vars[group].items()]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def ansible_command(tool, *args):
    """An Ansible CLI tool of this venv with the project's ansible.cfg, as a user runs it from the root.

    Returns (argv, env, cwd). Facts are not cached, so every run reads the
    inventory and hosts afresh; output has no colour codes.
    """
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(PROJECT, "ansible.cfg"),
               ANSIBLE_ROLES_PATH=os.path.join(PROJECT, "roles"), ANSIBLE_CACHE_PLUGIN="memory",
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    return [os.path.join(os.path.dirname(sys.executable), tool), *args], env, PROJECT


def run_playbook(playbook, inventory_path, *args, check=True):
    """Runs a playbook of the project as a user would; returns (output, recap).

    recap maps host -> {"ok": n, "changed": n, "failed": n, ...}.
    """
    command, env, cwd = ansible_command("ansible-playbook", "-i", str(inventory_path),
                                        os.path.join(PROJECT, playbook), *args)
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    output = result.stdout + result.stderr
    if check:
        assert result.returncode == 0, output[-6000:]
    return result.returncode, output, parse_recap(output)


def parse_recap(output):
    recap = {}
    in_recap = False
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        if in_recap and ":" in line and "=" in line:
            host, counts = line.split(":", 1)
            recap[host.strip()] = {key: int(value) for key, value in
                                   (pair.split("=") for pair in counts.split())}
        elif in_recap and not line.strip():
            in_recap = False
    return recap


def upstream_servers(lb_host):
    """The backends named in the load balancer's upstream (inventory names)."""
    site = lb_host.file("/etc/nginx/conf.d/hello-service.conf").content_string
    return sorted(line.rsplit("# backend=", 1)[1].strip() for line in site.splitlines()
                  if line.strip().startswith("server ") and "# backend=" in line)


class LoadGenerator:
    """Steady traffic through the load balancer while something else happens.

    `concurrency` threads alternate GET /requestme and POST /echo, each request
    on a new connection (a client's idle keep-alive connection can be closed by
    any server at any time, and then only the client can retry; a new
    connection per request makes every failure the server's). Every answer is
    counted: 2xx with the right body, any other status, transport errors.
    Paced at `rate` requests per second in all, so the load does not starve
    the deploy it watches; runs until stopped and at least `min_requests` were
    sent, and never longer than `max_seconds` (a bounded loop by design).
    Another app: GET `path` only (echo=False), whose JSON answer `expected`
    accepts (a function of the decoded body).
    """

    def __init__(self, address, concurrency=8, rate=100, min_requests=2000, max_seconds=900,
                 path="/requestme", expected=EXPECTED_BODY.__eq__, echo=True):
        import threading
        self.address, self.concurrency = address, concurrency
        self.path, self.expected, self.echo = path, expected, echo
        self.interval = concurrency / rate
        self.min_requests, self.max_seconds = min_requests, max_seconds
        self.lock = threading.Lock()
        self.stop_requested = threading.Event()
        self.ok = self.non_2xx = self.errors = 0
        self.samples = []
        self.threads = [threading.Thread(target=self._run, args=(number,), daemon=True)
                        for number in range(concurrency)]
        self.started = self.elapsed = None

    @property
    def total(self):
        return self.ok + self.non_2xx + self.errors

    def __enter__(self):
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_requested.set()
        for thread in self.threads:
            thread.join(timeout=self.max_seconds)
        self.elapsed = time.monotonic() - self.started
        return False

    def _record(self, kind, sample):
        with self.lock:
            setattr(self, kind, getattr(self, kind) + 1)
            if kind != "ok" and len(self.samples) < 20:
                self.samples.append(sample)

    def _done(self):
        return (self.stop_requested.is_set() and self.total >= self.min_requests) or \
            time.monotonic() - self.started > self.max_seconds

    def _run(self, number):
        import http.client
        sequence = 0
        next_at = time.monotonic() + number * self.interval / self.concurrency
        while not self._done():
            sequence += 1
            post = self.echo and sequence % 2 == 0
            payload = {"thread": number, "sequence": sequence}
            connection = http.client.HTTPConnection(self.address, timeout=10)
            try:
                if post:
                    connection.request("POST", "/echo", body=json.dumps(payload),
                                       headers={"Content-Type": "application/json", "Connection": "close"})
                else:
                    connection.request("GET", self.path, headers={"Connection": "close"})
                answer = connection.getresponse()
                body = answer.read()
                expected = (json.loads(body).get("echo") == payload) if post else self.expected(json.loads(body))
                if 200 <= answer.status < 300 and expected:
                    self._record("ok", None)
                else:
                    self._record("non_2xx", f"{answer.status} {body[:200]!r}")
            except (OSError, http.client.HTTPException, ValueError) as error:
                self._record("errors", repr(error))
            finally:
                connection.close()
            next_at += self.interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def summary(self):
        rate = self.total / self.elapsed if self.elapsed else 0
        return (f"{self.total} requests in {self.elapsed:.1f}s ({rate:.0f}/s), {self.ok} ok, "
                f"{self.non_2xx} non-2xx, {self.errors} errors; samples: {self.samples}")
