"""nginx runs, its configuration is valid, its upstream is the inventory's backends, and it has room
for many clients at once."""

import asyncio
import json
import resource
import uuid
from collections import Counter
from urllib.parse import urlsplit

from conftest import (address_of, hosts_in, inventory, inventory_name, journal, request, upstream_lines,
                      upstream_servers)

testinfra_hosts = hosts_in("loadbalancers")

# worker_connections in the distribution's nginx.conf, which the role replaces.
DISTRIBUTION_WORKER_CONNECTIONS = 768


def test_nginx_is_active_and_enabled(host):
    nginx = host.service("nginx")
    assert nginx.is_running, journal(host, "nginx")
    assert nginx.is_enabled


def test_nginx_configuration_is_valid(host):
    result = host.run("nginx -t")
    assert result.rc == 0, result.stderr


def test_upstream_names_every_backend(host):
    backends = inventory().get_hosts("backends")
    # As nginx reads it, by address, and as the rotation state holds it, by inventory name.
    lines = upstream_lines(host)
    assert sorted(line.split()[1] for line in lines) == sorted(f"{address_of(name)}:8080" for name in backends), lines
    assert not any(" down;" in line for line in lines), lines
    assert upstream_servers(host) == sorted(backends)


def test_default_site_is_removed(host):
    assert not host.file("/etc/nginx/sites-enabled/default").exists


def test_listens_on_80(host):
    assert host.socket("tcp://0.0.0.0:80").is_listening


def own_url(host):
    """This load balancer's own address, whichever of the scenario's it is."""
    return f"http://{address_of(inventory_name(host))}"


def test_access_log_is_json_with_upstream(host):
    probe = uuid.uuid4().hex
    assert request(f"{own_url(host)}/requestme?probe={probe}").status == 200
    lines = host.check_output(f"grep -F {probe} /var/log/nginx/hello-service.access.log").splitlines()
    assert len(lines) == 1, lines
    entry = json.loads(lines[0])
    assert entry["status"] == 200
    assert entry["upstream_addr"].endswith(":8080")
    assert entry["upstream_status"] == "200"
    assert len(entry["request_id"]) == 32


def test_kernel_settings_let_backend_connections_reuse_ports(host):
    # Written for the next boot and for hosts; a container's /proc/sys is
    # read-only, so the role leaves applying them to the engine there.
    settings = host.file("/etc/sysctl.d/60-hello-service.conf")
    assert (settings.user, settings.group, settings.mode) == ("root", "root", 0o644)
    assert "\nnet.ipv4.tcp_tw_reuse = 1\n" in settings.content_string


def _nginx_workers(host):
    """PIDs of the running workers (ps -C matches the command name, so the shell running ps is not counted)."""
    return [int(line.split(None, 1)[0]) for line in host.check_output("ps -C nginx -o pid=,args=").splitlines()
            if line.split(None, 1)[1].strip() == "nginx: worker process"]


async def _requests_on_open_connections(address, port, count):
    """Opens `count` connections, then sends one request on each while all stay open.

    Connections are opened one after another (a burst would only test the
    listen backlog); the requests go out together. Returns one outcome per
    connection: the answer's status, 0 for a connection closed without one,
    or the exception met while connecting or asking.
    """
    connections, outcomes = [], []

    async def ask(reader, writer):
        writer.write(b"GET /requestme HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 60)
        return int(status_line.split()[1]) if status_line else 0

    try:
        for _ in range(count):
            try:
                connections.append(await asyncio.wait_for(asyncio.open_connection(address, port), 10))
            except (OSError, asyncio.TimeoutError) as error:
                outcomes.append(error)
        outcomes += await asyncio.gather(*(ask(reader, writer) for reader, writer in connections),
                                         return_exceptions=True)
    finally:
        for _, writer in connections:
            writer.close()
    return outcomes


def test_holds_more_clients_than_the_distribution_allows(host):
    # With the distribution's nginx.conf each worker stops accepting at 768
    # connections, clients and backends together; this many clients, each
    # with a request in flight, need 2 x clients connections.
    workers = _nginx_workers(host)
    clients = DISTRIBUTION_WORKER_CONNECTIONS * len(workers) + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = clients + 256
    assert hard == resource.RLIM_INFINITY or hard >= needed, (
        f"this test opens {clients} connections; raise the open-file limit (ulimit -Hn {hard}) to {needed}")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    lb = urlsplit(own_url(host))
    statuses = asyncio.run(_requests_on_open_connections(lb.hostname, lb.port or 80, clients))
    outcomes = Counter(status if isinstance(status, int) else type(status).__name__ for status in statuses)
    assert outcomes == {200: clients}, (outcomes, host.run("tail -n 5 /var/log/nginx/error.log").stdout)


def test_workers_may_open_twice_as_many_files_as_connections(host):
    connections = int(host.check_output("nginx -T 2>/dev/null | awk '$1 == \"worker_connections\" {print $2+0}'"))
    workers = _nginx_workers(host)
    assert workers
    for pid in workers:
        limits = host.file(f"/proc/{pid}/limits").content_string
        soft_limit = next(line.split()[3] for line in limits.splitlines() if line.startswith("Max open files"))
        assert int(soft_limit) >= 2 * connections, limits
