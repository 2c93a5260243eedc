"""Each backend runs Gunicorn under a sandboxed systemd unit, as the service user."""

import uuid

import pytest

from conftest import SERVICE, connection_header, gunicorn_pids, healthz, hosts_in, journal, wait_for

testinfra_hosts = hosts_in("backends")


def test_service_is_active_and_enabled(host):
    service = host.service(SERVICE)
    assert service.is_running, journal(host)
    assert service.is_enabled


def test_gunicorn_runs_as_the_service_user(host):
    main_pid = host.check_output(f"systemctl show -p MainPID --value {SERVICE}")
    users = host.check_output(f"ps -o user= --pid {main_pid} --ppid {main_pid}").split()
    assert len(users) >= 2, "expected the master and at least one worker"
    assert set(users) == {SERVICE}, journal(host)


def test_listens_on_8080(host):
    assert host.socket("tcp://0.0.0.0:8080").is_listening, journal(host)


@pytest.mark.parametrize(
    ("prop", "expected"),
    [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectControlGroups", "yes"),
        ("Type", "notify"),
        ("KillMode", "mixed"),
        ("Restart", "on-failure"),
    ],
)
def test_sandbox_property(host, prop, expected):
    assert host.check_output(f"systemctl show -p {prop} --value {SERVICE}") == expected


def test_system_call_filter_is_set(host):
    allowed = host.check_output(f"systemctl show -p SystemCallFilter --value {SERVICE}")
    assert "bind" in allowed.split()
    assert "mount" not in allowed.split()


def test_stop_timeout_exceeds_graceful_timeout(host):
    settings = host.file(f"/etc/{SERVICE}/settings.env").content_string
    graceful = int(next(line.split("=", 1)[1] for line in settings.splitlines()
                        if line.startswith("GUNICORN_GRACEFUL_TIMEOUT=")))
    timeout = host.check_output(f"systemctl show -p TimeoutStopUSec --value {SERVICE}")
    assert _seconds(timeout) > graceful, f"TimeoutStopSec={timeout}, graceful timeout={graceful}s"


def _seconds(systemd_span):
    """'30s', '1min 30s' -> seconds."""
    units = {"min": 60, "s": 1, "ms": 0.001}
    total = 0.0
    for part in systemd_span.split():
        number = part.rstrip("minms")
        total += float(number) * units[part[len(number):]]
    return total


@pytest.mark.parametrize("suffix", ["", ".staged"])
def test_settings_file_is_not_world_readable(host, suffix):
    settings = host.file(f"/etc/{SERVICE}/settings.env{suffix}")
    assert settings.user == "root"
    assert settings.group == SERVICE
    assert settings.mode == 0o640


def test_the_unit_in_force_is_the_staged_one(host):
    staged = host.file(f"/etc/{SERVICE}/{SERVICE}.service.staged")
    live = host.file(f"/etc/systemd/system/{SERVICE}.service")
    assert (staged.user, staged.group, staged.mode) == ("root", "root", 0o644)
    assert staged.content_string == live.content_string
    # systemd loads the unit from its own directory, never the staged copy.
    assert host.check_output(f"systemctl show -p FragmentPath --value {SERVICE}") == live.path


def test_code_is_owned_by_root_and_not_writable_by_the_service(host):
    current = host.file(f"/opt/{SERVICE}/current")
    assert current.is_symlink
    release = host.file(current.linked_to)
    assert release.user == "root"
    assert not host.run(f"sudo -u {SERVICE} test -w {release.path}").rc == 0


def test_service_user_has_no_login_shell(host):
    assert host.user(SERVICE).shell == "/usr/sbin/nologin"


def test_sync_workers_two_per_cpu_plus_one_close_each_connection(host):
    # This scenario's backends see every CPU (the rolling scenario's have one
    # each): sync workers, each taking the next connection only when it is
    # free, so waiting requests queue in the listen socket, first come first served.
    cpus = int(host.check_output("nproc"))
    if cpus < 2:
        pytest.skip(f"the backends see {cpus} CPU: they run the one-CPU profile (the rolling scenario's test)")
    assert len(gunicorn_pids(host)[1]) == 2 * cpus + 1
    assert connection_header(host) == "close"


def test_health_reports_the_current_release(host):
    release = host.file(f"/opt/{SERVICE}/current").linked_to.rsplit("/", 1)[1]
    answer = healthz(host)
    assert answer == {"status": "ok", "release": release}


def test_successful_requests_are_left_to_the_load_balancer_log(host):
    """The app's request log (HELLO_SERVICE_REQUEST_LOG) is off by default: nginx's access log is the request log."""
    probe = uuid.uuid4().hex
    host.check_output(
        "python3 -c \"import urllib.request; urllib.request.urlopen(urllib.request.Request("
        f"'http://127.0.0.1:8080/requestme', headers={{'X-Request-ID': '{probe}'}})).read()\"")
    # A reload logs through the same journal stream after the request: once its
    # line is there, the request's line would be there too, had it been written.
    since = int(host.check_output("date +%s")) - 1
    host.check_output(f"systemctl reload {SERVICE}")

    def log():
        return host.check_output(f"journalctl -u {SERVICE} --since @{since} -o cat --no-pager")

    wait_for(lambda: "Handling signal: hup" in log(), timeout=20, what="the reload's log line")
    assert probe not in log()


def test_the_units_exposure_stays_at_most_1_5(host):
    # systemd's own score of the sandbox (0 is fully confined, 10 is none):
    # a change that loosens the unit fails here.
    report = host.run(f"systemd-analyze security {SERVICE}.service --no-pager")
    [overall] = [line for line in report.stdout.splitlines() if line.startswith("→ Overall exposure level")]
    exposure = float(overall.split(":")[1].split()[0])
    print(overall)
    assert exposure <= 1.5, report.stdout
