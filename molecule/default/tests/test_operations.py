"""Day-2 operations on the converged stack: a dry run, a settings change, bad input, the release cache."""

import concurrent.futures
import fcntl
import json
import os
import pathlib
import re
import subprocess
import sys
import tarfile
import time

import pytest

from conftest import (EXPECTED_BODY, PROJECT, SERVICE, LoadGenerator, address_of, ansible_command,
                      connection_header, container_of, drained_endpoints, gunicorn_pids, healthz, inventory,
                      nginx_reloads, request, rotation, run_playbook, upstream_peers, wait_for, write_inventory)

from tests.support.traffic import KINDS, Http2From, TrafficFrom

testinfra_hosts = []

BACKENDS = ["app1", "app2"]
LOADBALANCERS = ["lb1", "lb2"]
STAGED_SETTINGS = f"/etc/{SERVICE}/settings.env.staged"
STAGED_UNIT = f"/etc/{SERVICE}/{SERVICE}.service.staged"


# For a change or a check of the backends alone, `--limit backends`, as an operator would run it: the
# load balancers' plays have nothing to do (the backends' drains still reach them, delegated).
BACKENDS_ONLY = ("--limit", "backends")


@pytest.fixture(scope="module")
def hosts_file(tmp_path_factory):
    return write_inventory(tmp_path_factory.mktemp("inventory") / "hosts.yml",
                           {"loadbalancers": LOADBALANCERS, "backends": BACKENDS},
                           {"loadbalancers": {"nginx_lb_expose_upstream": True}})


def test_a_settings_change_is_a_reload_that_drops_nothing_and_one_worker_keeps_connections(hosts_file):
    # A settings change reaches the running service with a reload (HUP): same master, new workers, and
    # no failed request under load. The change here is the one-worker profile: roles/flask_app/README.md,
    # "Sizing Gunicorn": the worker class follows the number of workers, so one worker asked for is a
    # gthread worker that keeps the load balancer's connections alive. These backends see every CPU and
    # run sync workers by default (the rolling scenario's, pinned to one CPU, get it without asking).
    cpus = int(inventory().get_host("app1").check_output("nproc"))
    if cpus < 2:
        pytest.skip(f"the backends see {cpus} CPU: they run one worker by default (the rolling scenario's test)")
    lb = inventory().get_host("lb1")
    address = address_of("lb1")
    with LoadGenerator(address, min_requests=300) as load:
        pass
    assert load.errors == 0 and load.non_2xx == 0, load.summary()
    # The defaults here: sync workers close every connection, so none is left open, upstream keep-alive or not.
    assert upstream_peers(lb) == set()
    before = {name: gunicorn_pids(name) for name in BACKENDS}
    try:
        with LoadGenerator(address, min_requests=500) as load:
            _, _, recap = run_playbook("site.yml", hosts_file, *BACKENDS_ONLY, "-e", "flask_app_workers=1",
                                       "-e", "flask_app_max_requests=0")
            for name in BACKENDS:
                # The old workers finish their requests and exit; the new one replaces them.
                wait_for(lambda: gunicorn_pids(name)[1].isdisjoint(before[name][1])
                         and len(gunicorn_pids(name)[1]) == 1, timeout=30, what=f"{name} to run one new worker")
        print(f"settings change (reload): load {load.summary()}")
        assert load.errors == 0 and load.non_2xx == 0, load.summary()
        for name in BACKENDS:
            assert recap[name]["changed"] > 0
            assert gunicorn_pids(name)[0] == before[name][0], f"{name}: the master was restarted, not reloaded"
            settings = inventory().get_host(name).file(f"/etc/{SERVICE}/settings.env").content_string
            assert "GUNICORN_WORKERS=1\n" in settings and "GUNICORN_MAX_REQUESTS=0\n" in settings
            assert connection_header(inventory().get_host(name)) == "keep-alive", f"{name}: not a gthread worker"
        with LoadGenerator(address, min_requests=300) as load:
            pass
        print(f"one-worker profile: load {load.summary()}")
        assert load.errors == 0 and load.non_2xx == 0, load.summary()
        kept = upstream_peers(lb)
        assert kept, "no upstream connection was kept alive"
        assert kept == {address_of(name) for name in BACKENDS}, kept
        # Back to the inventory's settings: another reload, now while nginx holds kept-alive connections
        # to each backend's single worker (nginx never retries the load's POSTs on another backend).
        before = {name: gunicorn_pids(name) for name in BACKENDS}
        with LoadGenerator(address, min_requests=500) as load:
            run_playbook("site.yml", hosts_file, *BACKENDS_ONLY)
            for name in BACKENDS:
                wait_for(lambda: gunicorn_pids(name)[1].isdisjoint(before[name][1]), timeout=30,
                         what=f"{name}'s keep-alive worker to be replaced")
        print(f"settings change with kept-alive connections (reload): load {load.summary()}")
        assert load.errors == 0 and load.non_2xx == 0, load.summary()
        for name in BACKENDS:
            assert gunicorn_pids(name)[0] == before[name][0], f"{name}: the master was restarted, not reloaded"
    finally:
        # Whatever failed above, the next tests start from the inventory's settings (the next one shows
        # that a dry run then finds nothing to change).
        if "GUNICORN_WORKERS=1\n" in inventory().get_host("app1").file(f"/etc/{SERVICE}/settings.env").content_string:
            run_playbook("site.yml", hosts_file, *BACKENDS_ONLY)


# Tasks a re-run skips when the host already has what they make.
LAYOUT_TASKS = ("Create the service group", "Create the service user", "Create the directories")
STAGING_TASKS = ("Stage the service settings", "Stage the systemd unit")


def hosts_that_ran(output, tasks):
    """Hosts reported ok or changed under any of these flask_app tasks."""
    ran = set()
    for task in tasks:
        section = output.split(f"TASK [flask_app : {task}]", 1)[1].split("TASK [", 1)[0] \
            if f"TASK [flask_app : {task}]" in output else ""
        ran |= set(re.findall(r"^(?:ok|changed): \[([^\]]+)\]", section, re.M))
    return ran


# Drifts on app2, all at once (the host state module's unit tests show that each one alone is found):
# (command that makes it, check that it is repaired).
DRIFTS = {
    "directory mode": (f"chmod 0775 /opt/{SERVICE}/releases",
                       lambda host: host.file(f"/opt/{SERVICE}/releases").mode == 0o755),
    "directory group": (f"chgrp root /etc/{SERVICE}", lambda host: host.file(f"/etc/{SERVICE}").group == SERVICE),
    "login shell": (f"usermod --shell /bin/bash {SERVICE}",
                    lambda host: host.user(SERVICE).shell == "/usr/sbin/nologin"),
    "password": (f"usermod --password '*' {SERVICE}",
                 lambda host: host.check_output(f"getent shadow {SERVICE}").split(":")[1] == "!"),
    # The staged settings may hold the secret key.
    "staged settings mode": (f"chmod 0644 {STAGED_SETTINGS}", lambda host: host.file(STAGED_SETTINGS).mode == 0o640),
    "staged unit content": (f"echo '# edited' >> {STAGED_UNIT}",
                            lambda host: host.file(STAGED_UNIT).content_string
                            == host.file(f"/etc/systemd/system/{SERVICE}.service").content_string),
}


def test_a_rerun_repairs_drifts_and_a_missing_staged_unit_without_a_restart(hosts_file):
    # app1 as a backend deployed before units were staged: the live unit is current, its staged copy
    # missing. app2 with every drift of DRIFTS. Neither may be restarted: what runs is what is wanted.
    app1, app2 = (inventory().get_host(name) for name in BACKENDS)
    lb = inventory().get_host("lb1")
    site = f"/etc/nginx/conf.d/{SERVICE}.conf"
    wanted_site = lb.file(site).content_string
    # The load balancer skips the files it has as wanted: an edited site must still be put back.
    lb.run_expect([0], f"echo '# edited' >> {site}")
    assert lb.file(site).content_string != wanted_site
    app1.run_expect([0], f"rm {STAGED_UNIT}")
    for drift, (command, repaired) in DRIFTS.items():
        app2.run_expect([0], command)
        assert not repaired(app2), drift
    masters = {name: gunicorn_pids(name)[0] for name in BACKENDS}

    _, output, _ = run_playbook("site.yml", hosts_file, *BACKENDS_ONLY, "--check", "--diff")
    for name in BACKENDS:
        assert f"would restart {name}" not in output and f"would switch {name}" not in output, output[-4000:]
    assert not app1.file(STAGED_UNIT).exists

    # The drifts are on the backends and lb1: lb2 and the monitoring host sit this run out.
    _, output, recap = run_playbook("site.yml", hosts_file, "--limit", "backends:lb1")
    assert recap["app1"]["changed"] > 0 and recap["app2"]["changed"] > 0, output[-4000:]
    assert hosts_that_ran(output, LAYOUT_TASKS) == {"app2"}, output[-4000:]
    assert hosts_that_ran(output, STAGING_TASKS) == {"app1", "app2"}, output[-4000:]
    assert app1.file(STAGED_UNIT).content_string == app1.file(f"/etc/systemd/system/{SERVICE}.service").content_string
    for drift, (_, repaired) in DRIFTS.items():
        assert repaired(app2), f"not repaired: {drift}"
    assert recap["lb1"]["changed"] > 0 and lb.file(site).content_string == wanted_site, output[-4000:]
    assert {name: gunicorn_pids(name)[0] for name in BACKENDS} == masters, "a backend was restarted"


# The output of runs that a later test reads, by what they found.
RERUNS = {}


def healthy_release(name):
    try:
        return healthz(inventory().get_host(name))["release"]
    except (AssertionError, ValueError, KeyError):
        return None


def test_a_switch_stopped_before_its_restart_is_finished_by_a_rerun(hosts_file):
    # A deploy stopped (say, the controller lost its connection) after it put a
    # release or a unit in place on a backend, before the restart: the re-run
    # finds nothing to change on disk, but the service runs what it had.
    app1, app2 = (inventory().get_host(name) for name in BACKENDS)
    release = app2.file(f"/opt/{SERVICE}/current").linked_to.rsplit("/", 1)[1]
    stale, releases = "000000000001", f"/opt/{SERVICE}/releases"

    def point_current_at(target):
        app2.run_expect([0], f"ln -sfn {releases}/{target} /opt/{SERVICE}/current.new"
                             f" && mv -T /opt/{SERVICE}/current.new /opt/{SERVICE}/current")

    # app2 runs another release (a copy under an id of its own); then `current` goes back to the deployed one.
    app2.run_expect([0], f"cp -a {releases}/{release} {releases}/{stale}"
                         f" && echo HELLO_SERVICE_RELEASE_ID={stale} > {releases}/{stale}/release.env")
    try:
        point_current_at(stale)
        app2.run_expect([0], f"systemctl restart {SERVICE}")
        wait_for(lambda: healthy_release("app2") == stale, what=f"app2 to serve {stale}")
        point_current_at(release)
        # app1's unit put in force after its start as the switch does it, a copy of the staged file that keeps
        # its modification time (the same content: only the copy's change time tells).
        app1.run_expect([0], f"cp --preserve=timestamps {STAGED_UNIT} /etc/systemd/system/{SERVICE}.service")
        masters = {name: gunicorn_pids(name)[0] for name in BACKENDS}

        _, output, recap = run_playbook("site.yml", hosts_file, *BACKENDS_ONLY, "--check", "--diff")
        assert all(counts["changed"] == 0 for counts in recap.values()), recap
        for name in BACKENDS:
            assert f"would restart {name} on release {release} out of rotation" in output, output[-4000:]

        # A rolling restart of both backends with both load balancers up, under unpaced traffic from the ACME
        # host: HTTP/1.1 to the floating address (kept-alive and new connections, GET and POST) and HTTP/2
        # over TLS. Each backend refuses new connections while it restarts: no load balancer is reloaded,
        # so no kept-alive client connection is closed under a request.
        client = container_of(inventory().get_hosts("acme_servers")[0])
        floating = inventory().get_variables("lb1")["keepalived_virtual_addresses"][0]
        since = time.time()
        with TrafficFrom(client, f"{floating}:80", EXPECTED_BODY, clients_per_kind=1) as http1, \
                Http2From(client, f"https://{LOADBALANCERS[0]}/requestme") as http2:
            _, output, recap = run_playbook("site.yml", hosts_file, *BACKENDS_ONLY)
        reloads = {name: nginx_reloads(inventory().get_host(name), since) for name in LOADBALANCERS}
        report = http1.report
        print(f"re-run restarting both backends, nginx reloads {reloads}; no answer for {report.longest_gap():.2f}s"
              f" at most; {report.summary()}\n{http2.summary()}")
        assert reloads == dict.fromkeys(LOADBALANCERS, 0), reloads
        # Every client that retries as RFC 9112 lets it loses nothing; the one that never retries is reported.
        for kind, (_keepalive, retry) in KINDS.items():
            if retry:
                assert report.failed(kind) == 0, report.summary()
        assert http2.failed == 0 and http2.answered > 0, http2.summary()
        for name in BACKENDS:
            assert recap[name]["changed"] > 0, output[-4000:]
            assert gunicorn_pids(name)[0] != masters[name], f"{name} was not restarted"
            assert healthy_release(name) == release
        assert drained_endpoints(inventory().get_host("lb1")) == [] and rotation("lb1")["drained"] == []
        # Restarted, the services are what is on disk: a dry run of the whole site on the converged hosts
        # finds nothing to change, and no switch to make.
        _, output, recap = run_playbook("site.yml", hosts_file, "--check", "--diff")
        assert recap and all(counts["changed"] == 0 and counts["failed"] == 0 for counts in recap.values()), \
            output[-4000:]
        assert "would restart" not in output and "would switch" not in output, output[-4000:]
        RERUNS["nothing to change"] = output
    finally:
        app2.run_expect([0], f"rm -rf {releases}/{stale}")


def test_a_rerun_skips_the_account_directories_and_staged_files_it_has():
    # The last (dry) run of the test above, which found nothing to change.
    output = RERUNS.get("nothing to change")
    assert output is not None, "the test above stopped before its re-run"
    assert hosts_that_ran(output, LAYOUT_TASKS + STAGING_TASKS) == set(), output[-4000:]


def test_an_ipv6_bind_address_is_bracketed_for_gunicorn(hosts_file):
    # A dry run renders the settings and decides the switch without touching the host; this lab's
    # containers have no IPv6 to bind to. (The bracketed form, [::], is the filter's unit test.)
    _, output, _ = run_playbook("site.yml", hosts_file, *BACKENDS_ONLY, "--check", "--diff",
                                "-e", "flask_app_bind_address=::")
    assert "+GUNICORN_BIND=[::]:8080" in output, output[-4000:]
    for name in BACKENDS:
        assert f"would restart {name} on release" in output, output[-4000:]


def test_a_run_that_fails_after_a_settings_change_still_reloads(hosts_file):
    # New settings put in force notify a reload, which runs at the end of the play. Here app2 fails
    # before then (its prune meets an old release it cannot remove: it holds a mount point), which stops
    # the play on every backend. The reload must happen anyway: a re-run finds the settings in place.
    app2 = inventory().get_host("app2")
    releases = f"/opt/{SERVICE}/releases"
    stuck = [f"{number:012x}" for number in range(1, 6)]
    for release in stuck:
        app2.run_expect([0], f"mkdir -p {releases}/{release}/mnt && touch -d '2 days ago' {releases}/{release}"
                             f" && mount -t tmpfs stuck {releases}/{release}/mnt")
    before = {name: gunicorn_pids(name) for name in BACKENDS}
    try:
        returncode, output, _ = run_playbook("site.yml", hosts_file, *BACKENDS_ONLY, "-e", "flask_app_max_requests=5000",
                                             check=False)
        # A loop's failed item reads "failed: [host] (item=...)", not "fatal: [host]".
        assert returncode != 0 and "failed: [app2] (item=" in output, output[-4000:]
        failed_task = output.split("failed: [app2] (item=")[0].rsplit("TASK [", 1)[1]
        assert failed_task.startswith("flask_app : Remove releases beyond the number kept]"), failed_task
        for name in BACKENDS:
            settings = inventory().get_host(name).file(f"/etc/{SERVICE}/settings.env").content_string
            assert "GUNICORN_MAX_REQUESTS=5000\n" in settings
            assert gunicorn_pids(name)[0] == before[name][0], f"{name} was restarted"
            wait_for(lambda: gunicorn_pids(name)[1].isdisjoint(before[name][1]), timeout=30,
                     what=f"{name} to reload (its workers replaced)")
    finally:
        for release in stuck:
            app2.run_expect([0], f"umount {releases}/{release}/mnt && rm -rf {releases}/{release}")
        run_playbook("site.yml", hosts_file, *BACKENDS_ONLY)


# How the edge case's refusals start, in the order preflight reports them.
EDGE_REFUSALS = [
    "nginx_lb_client_header_buffers must be a whole number within 1-64, got 0",
    "nginx_lb_client_header_timeout must be a whole number >= 1, got 0",
    "nginx_lb_client_body_timeout must be a whole number >= 1, got 0",
    "nginx_lb_client_send_timeout must be a whole number >= 1, got 0",
    "nginx_lb_client_keepalive_timeout must be a whole number >= 0, got -1",
    "nginx_lb_rate_limit must be a whole number >= 0, got -1",
    "nginx_lb_rate_limit_burst must be a whole number >= 0, got -1",
    "nginx_lb_connection_limit must be a whole number within 0-65535, got -1",
    "nginx_lb_retry_after must be a whole number >= 0, got -1",
    "nginx_lb_https_port must be a whole number within 1-65535, got 70000",
    "nginx_lb_hsts_max_age must be a whole number >= 0, got -1",
]


BAD_INPUTS = {
    "port out of range": ({}, ["-e", "flask_app_port=70000"], "flask_app_port must be within 1-65535, got 70000"),
    "metrics on the app's port": ({}, ["-e", "flask_app_metrics_port=8080"],
                                  "flask_app_metrics_port must be within 1-65535 and differ from flask_app_port (8080)"),
    "a retention Prometheus cannot read": ({"monitoring": {"monitoring_retention": "15 days"}}, [],
                                           'monitoring_retention must be a Prometheus duration such as 30s, 5m or '
                                           '15d, got "15 days"'),
    "an exporter allowed to a host name": ({}, ["-e", '{"monitoring_allow": ["monitor.example"]}'],
                                           'monitoring_allow must be a list of IP addresses or networks'),
    "unknown balancing method": ({}, ["-e", "nginx_lb_balance_method=fastest"], "nginx_lb_balance_method"),
    "threads with sync workers": ({}, ["-e", "flask_app_worker_class=sync", "-e", "flask_app_threads=4"],
                                  "flask_app_threads must be 0 or 1 with flask_app_worker_class sync"),
    "too few worker connections": ({}, ["-e", "nginx_lb_worker_connections=16"],
                                   "nginx_lb_worker_connections must be within 64-262144"),
    "recycling the only worker": ({}, ["-e", "flask_app_workers=1"],
                                  "flask_app_max_requests must be 0 with flask_app_workers 1"),
    "an app setting that would be Gunicorn's": (
        {}, ["-e", '{"flask_app_environment": {"HELLO_SERVICE_LOG_LEVEL": "INFO", "GUNICORN_WORKERS": "1"}}'],
        "flask_app_environment: GUNICORN_WORKERS is reserved (names starting with GUNICORN_ are the role's own settings)"),
    "an app setting whose value adds a line": (
        {}, ["-e", '{"flask_app_environment": {"HELLO_SERVICE_LOG_LEVEL": "INFO\\nGUNICORN_WORKERS=1"}}'],
        "flask_app_environment: HELLO_SERVICE_LOG_LEVEL must not hold a line break or control character, got"),
    "a secret whose value adds a line": (
        {}, ["-e", '{"flask_app_secrets": {"HELLO_SERVICE_SECRET_KEY": "hidden-0123456789-0123456789\\nX=1"}}'],
        "flask_app_secrets: HELLO_SERVICE_SECRET_KEY must not hold a line break or control character, got (value "
        "not shown)"),
    "a WSGI target Gunicorn would not take": (
        {}, ["-e", "flask_app_wsgi_target='hello_service.wsgi:app --reload'"],
        "flask_app_wsgi_target must be module, module:variable or module:factory()"),
    "a host name among the trusted proxies": (
        {}, ["-e", "flask_app_forwarded_allow_ips=10.0.0.5,lb1.internal"],
        "flask_app_forwarded_allow_ips must list IP addresses or networks, comma separated, or *; got lb1.internal "
        "in '10.0.0.5,lb1.internal'"),
    "a backend address with a port": ({"backends": {"nginx_lb_backend_address": "10.0.0.11:8080"}}, [],
                                      'nginx_lb_backend_address of app1 must be a host name or an IP address '
                                      '(IPv6 with or without brackets, no port), got "10.0.0.11:8080"'),
    "the load balancers' port is not the service's": (
        {}, ["-e", "nginx_lb_backend_default_port=8081"],
        "app1: the load balancers would send to port 8081 (nginx_lb_backend_port, else nginx_lb_backend_default_port) "
        "but the service listens on flask_app_port=8080"),
    "a backend that closes idle connections first": (
        {}, ["-e", "flask_app_keepalive=60"],
        "app1: flask_app_keepalive=60 must be above the load balancers' nginx_lb_keepalive_timeout=60 (or 0, no "
        "keep-alive), so that nginx closes an idle connection before Gunicorn does"),
    "a canary that is not a boolean": ({}, ["-e", "rolling_canary=maybe"], "rolling_canary must be true or false, got maybe"),
    # Every input of the edge at once: preflight reports all of them in one run.
    "the edge's inputs, each with a value of another shape": (
        {}, ["-e", json.dumps({
            "nginx_lb_client_header_max_size": "4k; return 200", "nginx_lb_client_header_buffers": 0,
            "nginx_lb_client_header_timeout": 0, "nginx_lb_client_body_timeout": 0, "nginx_lb_client_send_timeout": 0,
            "nginx_lb_client_keepalive_timeout": -1, "nginx_lb_rate_limit": -1, "nginx_lb_rate_limit_burst": -1,
            "nginx_lb_connection_limit": -1, "nginx_lb_retry_after": -1, "nginx_lb_hsts_max_age": -1,
            "nginx_lb_https_port": 70000, "nginx_lb_security_headers": {"X-Frame-Options": 'DENY" always; return 200 "x'},
            "nginx_lb_private_paths": ["/healthz; allow all"], "nginx_lb_private_allow": ["all"],
            "nginx_lb_acme_directory_url": "https://acme:14000/dir; x", "nginx_lb_acme_email": "nobody",
            "nginx_lb_acme_ca_bundle": "not a certificate", "nginx_lb_loadbalancer_group": "load balancers"})],
        "; ".join(EDGE_REFUSALS)),
    "a host name as the bind address": ({}, ["-e", "flask_app_bind_address=localhost"],
                                        'flask_app_bind_address must be an IP address (IPv4, or IPv6 with or without '
                                        'brackets; 0.0.0.0 or :: for every address), got "localhost"'),
    "two backends on one address:port": ({"backends": {"nginx_lb_backend_address": "shared.internal"}}, [],
                                         "shared.internal:8080 is used by app1 and app2"),
    "root as the service's account": ({}, ["-e", "flask_app_user=root"],
                                      "flask_app_user must not be root: the service runs unprivileged, as an account "
                                      "the deploy locks (no password, no login shell), got 'root'"),
    "a prefix with a space": ({}, ["-e", "flask_app_prefix='/opt/hello service'"],
                              "flask_app_prefix must be an absolute path of letters, digits and '_.+-', with no '.', "
                              "'..' or empty part and no trailing '/', got '/opt/hello service'"),
    # argument_specs' message: "value of flask_app_restrict_address_families must be one or more of: <every
    # family systemd knows>. Got no match for: AF_BOGUS".
    "an address family systemd does not know": (
        {}, ["-e", '{"flask_app_restrict_address_families": ["AF_INET", "AF_UNIX", "AF_BOGUS"]}'],
        "Got no match for: AF_BOGUS"),
    "a server name and a body size that add a directive": (
        {}, ["-e", "nginx_lb_server_name='_; return 200'", "-e", "nginx_lb_client_max_body_size='1m; return 200'"],
        'nginx_lb_server_name must be host names separated by spaces, each like example.com, *.example.com, '
        '.example.com or www.example.*, or _, got "_; return 200"; nginx_lb_client_max_body_size must be a size as '
        'nginx reads it: digits, then optionally k, m or g (e.g. 1m, or 0 for no limit), got "1m; return 200"'),
    "a site name that is a path": ({}, ["-e", "nginx_lb_site_name=hello/service"],
                                   "nginx_lb_site_name must be a file name: letters, digits, '.', '_' and '-', not "
                                   "starting with '.' or '-', got \"hello/service\""),
}

# The cases run site.yml, but for these: the operations that switch backends check both tiers too.
PLAYBOOK_OF = {"the load balancers' port is not the service's": "playbooks/rolling_update.yml",
               "a backend that closes idle connections first": "playbooks/rollback.yml"}


@pytest.fixture(scope="module")
def bad_input_runs(tmp_path_factory):
    """Every case of BAD_INPUTS, run a few at a time: case -> (returncode, output, recap).

    Each run stops in preflight, on the controller, before any host changes, so the runs
    cannot disturb each other, and most of each one's time is Ansible starting up.
    """
    directory = tmp_path_factory.mktemp("bad-input")

    def run_case(number, case):
        group_vars, args, _ = BAD_INPUTS[case]
        hosts = write_inventory(directory / f"hosts-{number}.yml",
                                {"loadbalancers": LOADBALANCERS, "backends": BACKENDS},
                                {"loadbalancers": {"nginx_lb_expose_upstream": True}, **group_vars})
        return run_playbook(PLAYBOOK_OF.get(case, "site.yml"), hosts, *args, check=False)

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        runs = {case: pool.submit(run_case, number, case) for number, case in enumerate(sorted(BAD_INPUTS))}
    return {case: run.result() for case, run in runs.items()}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_before_any_change(bad_input_runs, case):
    message = BAD_INPUTS[case][2]
    returncode, output, recap = bad_input_runs[case]
    assert returncode != 0
    # Ansible's YAML output may wrap a long message.
    unwrapped = " ".join(output.split())
    assert message in unwrapped, output[-3000:]
    if case == "unknown balancing method":
        assert "fastest" in output
    if case == "too few worker connections":
        assert "got 16" in output
    if case == "recycling the only worker":
        assert "got flask_app_max_requests=10000" in unwrapped
    if case == "the edge's inputs, each with a value of another shape":
        for variable in ("nginx_lb_client_header_max_size", "nginx_lb_security_headers.X-Frame-Options",
                         "nginx_lb_private_paths", "nginx_lb_private_allow", "nginx_lb_acme_directory_url",
                         "nginx_lb_acme_email", "nginx_lb_acme_ca_bundle", "nginx_lb_loadbalancer_group"):
            assert f"{variable} must be" in unwrapped, variable
    if case == "a secret whose value adds a line":
        assert "hidden-0123456789" not in output
    assert all(counts["changed"] == 0 for counts in recap.values()), recap


def test_empty_backend_group_is_refused(tmp_path):
    hosts = write_inventory(tmp_path / "hosts.yml", {"loadbalancers": ["lb1"], "backends": []})
    returncode, output, recap = run_playbook("site.yml", hosts, check=False)
    assert returncode != 0
    assert "nginx_lb_backend_group=backends names no host" in output, output[-3000:]
    assert all(counts["changed"] == 0 for counts in recap.values()), recap


def test_config_nginx_rejects_leaves_the_running_one(hosts_file, lb_url):
    lb = inventory().get_host("lb1")
    site = "/etc/nginx/conf.d/hello-service.conf"
    before = lb.file(site).sha256sum
    # A size of the shape preflight lets through, above the largest file offset nginx
    # can hold (2^63 - 1 bytes): only nginx -t refuses it.
    returncode, output, _ = run_playbook("site.yml", hosts_file, "--limit", "loadbalancers",
                                         "-e", "nginx_lb_client_max_body_size=9000000000g", check=False)
    assert returncode != 0
    # nginx's own message, as Ansible prints it (quotes escaped).
    assert 'client_max_body_size\\" directive invalid value' in output, output[-3000:]
    assert lb.file(site).sha256sum == before
    assert lb.run("nginx -t").rc == 0
    assert request(f"{lb_url}/requestme").status == 200


def _build_release(build_root, platform, pip_python, *options, **arguments):
    """Start the role's build module on this controller, as a deploy's run_once task runs it."""
    arguments = {"source_dir": os.path.join(PROJECT, "app"), "build_root": str(build_root),
                 "requirements": os.path.join(PROJECT, "app", "requirements.txt"),
                 "gunicorn_config": os.path.join(PROJECT, "roles", "flask_app", "files", "gunicorn.conf.py"),
                 "pip_python": str(pip_python), "platforms": [platform], **arguments}
    command, env, cwd = ansible_command(
        "ansible", "localhost", "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
        "-M", os.path.join(PROJECT, "roles", "flask_app", "library"), "-m", "flask_app_build", "-a", json.dumps(arguments),
        *options)
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _build_result(build):
    """The module's result of an ad-hoc run: ("CHANGED" or "SUCCESS", the returned values)."""
    stdout, stderr = build.communicate(timeout=600)
    assert build.returncode == 0, (stdout + stderr)[-3000:]
    outcome, result = re.search(r"^localhost \| (CHANGED|SUCCESS) => (\{.*)", stdout, re.MULTILINE | re.DOTALL).groups()
    return outcome, json.loads(result)


def host_platform(name="app1"):
    """What the role's stage step tells the build module about a host."""
    python, arch, glibc = inventory().get_host(name).check_output(
        "python3 -c 'import platform, sys; print(\"%d.%d\" % sys.version_info[:2], platform.machine(), "
        "platform.libc_ver()[1])'").split()
    return {"python": python, "arch": arch, "glibc": glibc}


def test_two_deploys_at_once_build_the_release_once(tmp_path):
    # Two playbook runs of the same source from one controller (two inventories,
    # two CI jobs) share the release cache: one builds, the other waits for it.
    platform = host_platform()
    # pip, slowed down so that the second run starts while the first one builds.
    pip_calls = tmp_path / "pip-calls.log"
    slow_python = tmp_path / "slow-python"
    slow_python.write_text(f'#!/bin/sh\necho "$*" >> {pip_calls}\nsleep 3\nexec {sys.executable} "$@"\n')
    slow_python.chmod(0o755)
    build_root = tmp_path / "releases"
    builds = [_build_release(build_root, platform, slow_python) for _ in range(2)]
    try:
        results = [_build_result(build) for build in builds]
    finally:
        for build in builds:
            if build.poll() is None:
                build.kill()
    assert sorted(outcome for outcome, _ in results) == ["CHANGED", "SUCCESS"]
    wheel_builds = [line for line in pip_calls.read_text().splitlines() if "pip wheel" in line]
    assert len(wheel_builds) == 1, pip_calls.read_text()
    key = "{python}-{arch}-glibc{glibc}".format(**platform)
    (artifact,) = {result["artifacts"][key] for _, result in results}
    with tarfile.open(artifact) as release:
        assert {"gunicorn.conf.py", "requirements.txt", "wheels"} <= set(release.getnames())
    assert not list(build_root.rglob("*.partial"))


def test_the_release_cache_keeps_the_releases_used_last(tmp_path):
    # The controller's cache keeps flask_app_releases_keep releases, by last use,
    # pruned by a run that builds. It never removes what is not a release, one used
    # in the last 30 minutes, nor one another run builds; a failed build (no
    # artifact) goes before any release. A run that builds nothing removes nothing.
    platform = host_platform()
    key = "{python}-{arch}-glibc{glibc}".format(**platform)
    build_root = tmp_path / "releases"
    _, dry_run = _build_result(_build_release(build_root, platform, sys.executable, "--check", keep=3))
    assert not build_root.exists()  # a dry run writes nothing
    release_id = dry_run["release_id"]
    artifact = pathlib.Path(dry_run["artifacts"][key])
    artifact_name = artifact.name
    hour = 3600

    def cached(name, age, artifact=True):
        (build_root / name / key).mkdir(parents=True)
        if artifact:
            (build_root / name / key / artifact_name).write_bytes(b"")
        (build_root / name / key / (artifact_name + ".lock")).touch()
        stamp = time.time() - age
        os.utime(build_root / name, (stamp, stamp))
        return name

    recent = cached("a" * 12, age=300)
    # Last used in an order that is not the order of their names.
    by_age = {hours: cached(f"{index:012x}", age=hours * hour) for index, hours in enumerate([5, 2, 6, 1, 4, 3], 1)}
    failed = cached("b" * 12, age=45 * 60, artifact=False)
    failed_just_now = cached("c" * 12, age=300, artifact=False)
    in_use = cached("f" * 12, age=8 * hour)
    (build_root / "notes").mkdir()
    kept = sorted([release_id, recent, by_age[1], failed_just_now, in_use, "notes"])
    expected = sorted([by_age[hours] for hours in (2, 3, 4, 5, 6)] + [failed])

    # A dry run lists what the build's run would remove, and removes nothing.
    outcome, result = _build_result(_build_release(build_root, platform, sys.executable, "--check", keep=3))
    assert (outcome, result["pruned"]) == ("CHANGED", sorted(expected + [in_use]))
    assert len(list(build_root.iterdir())) == len(kept) - 1 + len(expected)

    with open(build_root / in_use / key / (artifact_name + ".lock")) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        outcome, result = _build_result(_build_release(build_root, platform, sys.executable, keep=3))
    assert (outcome, result["pruned"]) == ("CHANGED", expected)
    assert sorted(path.name for path in build_root.iterdir() if path.name != ".prune.lock") == kept
    assert result["artifacts"] == {key: str(artifact)}
    assert artifact.stat().st_size > 0

    # The other run is done with it, but a run that builds nothing changes nothing.
    outcome, result = _build_result(_build_release(build_root, platform, sys.executable, keep=3))
    assert (outcome, result["pruned"]) == ("SUCCESS", [])
    assert (build_root / in_use).exists()
    assert (build_root / release_id).stat().st_mtime > time.time() - 60
    # The next build removes it.
    artifact.unlink()
    outcome, result = _build_result(_build_release(build_root, platform, sys.executable, keep=3))
    assert (outcome, result["pruned"]) == ("CHANGED", [in_use])
