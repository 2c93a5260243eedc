"""The release transaction (roles/flask_app/library/flask_app_release.py) on a host laid out in a tmp dir.

systemd and the HTTP probe are a fake that serves the release `current`
points at when it restarts; the real ones are proven by the Molecule scenarios.
"""

import ipaddress
import json
import os

import pytest

import flask_app_release
from flask_app_release import Release

SERVICE = "app"
R0, R1, R2, R3 = "0" * 12, "1" * 12, "2" * 12, "3" * 12


class FakeSystem:
    """Runs the release `current` points at on each restart; `broken` releases answer 503."""

    def __init__(self, prefix, settings, active=True, broken=(), started_before_files=False, port=8080):
        self.prefix, self.settings = prefix, settings
        self.state = "active" if active else "inactive"
        self.broken = set(broken)
        self.clock = 1000.0
        # The main process started an hour ago (before anything the test lays out), or after it all.
        self.started = self.clock - 3600 if started_before_files else self.clock + 1
        self.serving = flask_app_release.link_target_id(os.path.join(prefix, "current")) if active else ""
        self.sockets = [(ipaddress.ip_address("0.0.0.0"), port)] if active else []
        self.calls, self.urls = [], []

    def unit(self, service):
        assert service == SERVICE
        return {"ActiveState": self.state, "ExecMainStartTimestampMonotonic": str(int(self.started * 1e6)),
                "FragmentPath": ""}

    def systemctl(self, *args):
        self.calls.append(" ".join(args))
        if args[0] == "restart":
            self.serving = flask_app_release.link_target_id(os.path.join(self.prefix, "current"))
            self.state = "active"
            # The port comes from the settings in force, as Gunicorn reads it.
            port = int(open(self.settings).read().split("PORT=")[1].split()[0])
            self.sockets = [(ipaddress.ip_address("0.0.0.0"), port)]

    def get(self, url, timeout):
        self.urls.append(url)
        if not any(url.endswith(f":{port}/healthz") for _, port in self.sockets):
            raise ConnectionRefusedError(111, "Connection refused")
        status = 503 if self.serving in self.broken else 200
        return status, json.dumps({"release": self.serving}).encode()

    def wall_clock(self):
        import time
        return time.time()

    def monotonic(self):
        return self.clock

    def sleep(self, seconds):
        self.clock += seconds

    def listening(self, user):
        return list(self.sockets)


@pytest.fixture
def host(tmp_path):
    """A host on R1 (previous R0) with R2 staged: releases installed, settings and unit live and staged."""
    prefix, etc = tmp_path / "opt", tmp_path / "etc"
    for release in (R0, R1, R2):
        (prefix / "releases" / release).mkdir(parents=True)
        (prefix / "releases" / release / ".installed").write_text(release)
    os.symlink(prefix / "releases" / R1, prefix / "current")
    os.symlink(prefix / "releases" / R0, prefix / "previous")
    etc.mkdir()
    write(etc / "settings.env", "PORT=8080\n")
    write(etc / "settings.env.staged", "PORT=8080\n")
    write(etc / "app.service", "[Service]\n")
    write(etc / "app.service.staged", "[Service]\n")
    return tmp_path


def write(path, text):
    path.write_text(text)
    path.chmod(0o644)


def files(tmp_path):
    etc = tmp_path / "etc"
    return [
        {"name": "settings", "live": str(etc / "settings.env"), "staged": str(etc / "settings.env.staged"),
         "previous": str(etc / "settings.env.previous"), "group": "root", "mode": "0640", "checksum": "",
         "restart": False},
        {"name": "systemd unit", "live": str(etc / "app.service"), "staged": str(etc / "app.service.staged"),
         "previous": str(etc / "app.service.previous"), "group": "root", "mode": "0644", "checksum": "",
         "restart": True},
    ]


def params(tmp_path, **changes):
    values = {"action": "switch", "prefix": str(tmp_path / "opt"), "service": SERVICE, "user": SERVICE,
              "host": "app1", "release": R2, "rollback": False, "bind": {"address": "0.0.0.0", "port": 8080},
              "files": files(tmp_path),
              "health": {"path": "/healthz", "status": 200, "release_key": "release", "timeout": 5}}
    values.update(changes)
    return values


def system_for(tmp_path, **options):
    return FakeSystem(str(tmp_path / "opt"), str(tmp_path / "etc" / "settings.env"), **options)


def run(tmp_path, system, check_mode=False, **changes):
    return Release(params(tmp_path, **changes), system).run(check_mode)


def links(tmp_path):
    return (flask_app_release.link_target_id(tmp_path / "opt" / "current"),
            flask_app_release.link_target_id(tmp_path / "opt" / "previous"))


def test_a_new_release_is_switched_to_and_verified(host):
    system = system_for(host)
    result = run(host, system)
    assert (result["changed"], result["outcome"], result["switch_needed"]) == (True, "switched", True)
    assert (result["release_from"], result["release_to"]) == (R1, R2)
    assert links(host) == (R2, R1)
    assert system.calls == ["daemon-reload", f"enable {SERVICE}.service", f"restart {SERVICE}.service"]
    assert system.serving == R2
    assert system.urls[-1] == "http://127.0.0.1:8080/healthz"
    assert "failed" not in result


class SlowSystem(FakeSystem):
    """A restart that takes 2.5 s, and a release that answers its first health check only after a second."""

    def systemctl(self, *args):
        super().systemctl(*args)
        if args[0] == "restart":
            self.clock += 2.5
            self.refusals = 1

    def get(self, url, timeout):
        if getattr(self, "refusals", 0):
            self.refusals -= 1
            raise ConnectionRefusedError(111, "Connection refused")
        return super().get(url, timeout)


def test_a_switch_reports_how_long_its_restart_and_health_check_took(host):
    system = SlowSystem(str(host / "opt"), str(host / "etc" / "settings.env"))
    result = run(host, system)
    assert result["outcome"] == "switched"
    assert result["steps"] == {"restart": 2.5, "health": 1.0}


def test_no_switch_reports_no_steps(host):
    assert run(host, system_for(host), release=R1)["steps"] == {}


def test_a_first_deploy_has_nothing_to_keep(host):
    (host / "opt" / "current").unlink()
    (host / "opt" / "previous").unlink()
    (host / "etc" / "settings.env").unlink()
    (host / "etc" / "app.service").unlink()
    system = system_for(host, active=False)
    result = run(host, system)
    assert result["outcome"] == "switched" and result["release_from"] == ""
    assert links(host) == (R2, "")
    assert (host / "etc" / "settings.env").read_text() == "PORT=8080\n"
    assert oct((host / "etc" / "settings.env").stat().st_mode & 0o777) == "0o640"
    assert not (host / "etc" / "settings.env.previous").exists()


def test_a_host_on_its_release_is_left_alone(host):
    system = system_for(host)
    result = run(host, system, release=R1)
    assert (result["changed"], result["outcome"], result["switch_needed"]) == (False, "unchanged", False)
    assert result["switch_reasons"] == [] and result["files_out_of_date"] == []
    assert system.calls == [] and links(host) == (R1, R0)


def test_a_settings_change_alone_is_no_switch_but_is_reported_for_the_reload(host):
    write(host / "etc" / "settings.env.staged", "PORT=8080\nTIMEOUT=31\n")
    system = system_for(host)
    result = run(host, system, release=R1)
    assert (result["switch_needed"], result["files_out_of_date"]) == (False, ["settings"])
    assert system.calls == []
    # The reload (a HUP) puts it in force, not this module.
    assert (host / "etc" / "settings.env").read_text() == "PORT=8080\n"


@pytest.mark.parametrize("drift, reason", [
    ("unit", "its systemd unit changed"),
    ("stopped", "the service is inactive"),
    ("port", "it listens at 0.0.0.0:9090, not at 0.0.0.0:8080"),
])
def test_the_same_release_is_restarted_when_what_it_runs_with_changed(host, drift, reason):
    if drift == "unit":
        write(host / "etc" / "app.service.staged", "[Service]\nNice=1\n")
    system = system_for(host, active=drift != "stopped", port=9090 if drift == "port" else 8080)
    inspected = run(host, system, action="inspect", release=R1)
    assert inspected["switch_needed"] and reason in inspected["switch_reasons"], inspected["switch_reasons"]
    assert inspected["msg"].startswith(f"would restart app1 on release {R1} out of rotation (")
    assert (inspected["changed"], system.calls) == (False, [])
    result = run(host, system, release=R1)
    assert result["outcome"] == "switched" and system.calls[-1] == f"restart {SERVICE}.service"
    assert links(host) == (R1, R0)


def test_a_switch_left_half_done_is_finished(host):
    # A run stopped after it pointed `current` at R2, before the restart: the service still runs R1.
    os.unlink(host / "opt" / "current")
    os.symlink(host / "opt" / "releases" / R2, host / "opt" / "current")
    system = system_for(host, started_before_files=True)
    system.serving = R1
    result = run(host, system)
    assert any(reason.endswith("current changed after the service started") for reason in result["switch_reasons"])
    assert result["outcome"] == "switched" and system.serving == R2


def test_a_service_started_after_everything_changed_is_not_restarted(host):
    system = system_for(host, started_before_files=False)
    assert run(host, system, action="inspect", release=R1)["changed_since_start"] == []


def test_a_release_that_does_not_turn_healthy_is_reverted_with_its_files(host):
    write(host / "etc" / "settings.env.staged", "PORT=8080\nTIMEOUT=31\n")
    write(host / "etc" / "app.service.staged", "[Service]\nNice=1\n")
    system = system_for(host, broken={R2})
    result = run(host, system)
    assert result["failed"] and result["outcome"] == "reverted"
    assert result["msg"].startswith(f"release {R2} did not become healthy on app1 (no healthy answer within 5 s")
    assert f"reverted to release {R1} and the settings and systemd unit it ran with" in result["msg"]
    assert result["msg"].endswith(f"Logs: journalctl -u {SERVICE}")
    assert links(host) == (R1, R0)
    assert (host / "etc" / "settings.env").read_text() == "PORT=8080\n"
    assert (host / "etc" / "app.service").read_text() == "[Service]\n"
    assert system.serving == R1
    assert system.calls[-2:] == ["daemon-reload", f"restart {SERVICE}.service"]


def test_a_revert_probes_the_old_release_where_it_listened(host):
    # The failed switch moved the service to 9090; the settings put back bring it to 8080.
    write(host / "etc" / "settings.env.staged", "PORT=9090\n")
    system = system_for(host, broken={R2})
    result = run(host, system, bind={"address": "0.0.0.0", "port": 9090})
    assert result["outcome"] == "reverted", result["msg"]
    assert system.urls[0] == "http://127.0.0.1:9090/healthz"
    assert system.urls[-1] == "http://127.0.0.1:8080/healthz"


def test_a_failed_release_with_no_files_changed_goes_back_to_the_release_alone(host):
    system = system_for(host, broken={R2})
    result = run(host, system)
    assert result["outcome"] == "reverted"
    assert f"; reverted to release {R1}." in result["msg"]
    assert links(host) == (R1, R0) and system.serving == R1


def test_a_failed_unit_change_on_the_same_release_puts_the_unit_back(host):
    write(host / "etc" / "app.service.staged", "[Service]\nNice=1\n")
    system = system_for(host, broken={R1})
    result = run(host, system, release=R1)
    assert result["outcome"] == "failed", result["msg"]  # the old unit does not make R1 healthy either
    assert f"put back the systemd unit it ran with on release {R1}, which did not answer either" in result["msg"]
    assert (host / "etc" / "app.service").read_text() == "[Service]\n"


def test_a_failed_first_deploy_has_nothing_to_revert_to(host):
    (host / "opt" / "current").unlink()
    system = system_for(host, active=False, broken={R2})
    result = run(host, system)
    assert result["failed"] and result["outcome"] == "failed"
    assert result["msg"].endswith(f"no earlier release to revert to. Logs: journalctl -u {SERVICE}")
    assert links(host)[0] == R2
    assert system.calls.count(f"restart {SERVICE}.service") == 1


def test_a_status_only_health_check_ignores_the_answer(host):
    system = system_for(host, broken={R2})
    system.get = lambda url, timeout: (204, b"not json")
    health = {"path": "/healthz", "status": 204, "release_key": "", "timeout": 5}
    assert run(host, system, health=health)["outcome"] == "switched"


def test_an_answer_for_another_release_is_not_healthy():
    health = {"status": 200, "release_key": "release"}
    assert flask_app_release.healthy(200, b'{"release": "1"}', health, "1") is None
    assert flask_app_release.healthy(200, b'{"release": "0"}', health, "1") == "release '0', wanted '1'"
    assert flask_app_release.healthy(500, b"", health, "1") == "status 500, wanted 200"
    assert "not a JSON object" in flask_app_release.healthy(200, b"[]", health, "1")


def test_rollback_goes_to_the_previous_release_and_keeps_the_files_in_force(host):
    write(host / "etc" / "settings.env.staged", "PORT=8080\nTIMEOUT=31\n")
    system = system_for(host)
    result = run(host, system, release="", rollback=True)
    assert (result["outcome"], result["release_from"], result["release_to"]) == ("switched", R1, R0)
    assert links(host) == (R0, R1)
    assert (host / "etc" / "settings.env").read_text() == "PORT=8080\n"
    assert system.serving == R0


def test_rollback_to_a_named_release(host):
    system = system_for(host)
    result = run(host, system, release=R2, rollback=True)
    assert result["outcome"] == "switched" and links(host) == (R2, R1)


def test_rollback_to_the_current_release_changes_nothing(host):
    system = system_for(host)
    result = run(host, system, release=R1, rollback=True)
    assert result["outcome"] == "unchanged" and system.calls == []


@pytest.mark.parametrize("release, message", [
    (R3, f"flask_app_rollback_release={R3} is not installed on app1"),
    ("", f"the previous release {R0} is not installed on app1"),
])
def test_rollback_to_a_release_not_installed_is_refused_before_any_change(host, release, message):
    (host / "opt" / "releases" / R0 / ".installed").unlink()
    with pytest.raises(ValueError, match=message):
        Release(params(host, release=release, rollback=True), system_for(host))
    assert links(host) == (R1, R0)


def test_rollback_with_no_previous_release_is_refused(host):
    (host / "opt" / "previous").unlink()
    with pytest.raises(ValueError, match="app1 has no previous release to roll back to"):
        Release(params(host, release="", rollback=True), system_for(host))


def test_check_mode_says_what_would_happen_and_changes_nothing(host):
    write(host / "etc" / "settings.env.staged", "PORT=8080\nTIMEOUT=31\n")
    system = system_for(host)
    result = run(host, system, check_mode=True)
    assert (result["changed"], result["outcome"]) == (True, "would switch")
    assert result["msg"] == f"would switch app1 from {R1} to {R2}"
    assert system.calls == [] and links(host) == (R1, R0)
    assert (host / "etc" / "settings.env").read_text() == "PORT=8080\n"


def test_a_dry_run_decides_on_the_rendered_checksum_of_a_file_not_yet_staged(host):
    (host / "etc" / "app.service.staged").unlink()
    rendered = files(host)
    rendered[1]["checksum"] = flask_app_release.sha1(host / "etc" / "app.service")
    result = run(host, system_for(host), check_mode=True, release=R1, files=rendered)
    assert result["switch_needed"] is False, result["switch_reasons"]


def test_the_state_is_read_without_a_switch(host):
    (host / "opt" / "releases" / "000000000009").mkdir()
    result = run(host, system_for(host), action="inspect")
    assert (result["current_release"], result["previous_release"]) == (R1, R0)
    assert result["releases"][0]["id"] == "000000000009" and not result["releases"][0]["installed"]
    assert sorted(result["installed_releases"]) == [R0, R1, R2]
    assert result["listening"] == [{"address": "0.0.0.0", "port": 8080}]
    assert result["service_state"] == "active"


@pytest.mark.parametrize("address, probe", [("0.0.0.0", "127.0.0.1"), ("::", "[::1]"), ("[::]", "[::1]"),
                                            ("10.0.0.5", "10.0.0.5"), ("fd00::5", "[fd00::5]")])
def test_the_probe_asks_where_the_service_binds(address, probe):
    assert flask_app_release.probe_host(address) == probe


def test_listening_sockets_are_read_from_proc_net_tcp(tmp_path):
    import pwd
    uid = os.getuid()
    user = pwd.getpwuid(uid).pw_name
    table = tmp_path / "tcp"
    table.write_text(
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
        f"   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 {uid}\n"
        f"   1: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000 {uid + 1}\n"
        f"   2: 0100007F:1F91 0100007F:1234 01 00000000:00000000 00:00000000 00000000 {uid}\n")
    assert flask_app_release.listening_sockets(user, tables=(str(table),)) == [
        (ipaddress.ip_address("0.0.0.0"), 8080)]


def test_a_switch_needs_a_release_unless_it_is_a_rollback(host):
    with pytest.raises(ValueError, match="release is required to switch"):
        Release(params(host, release=""), system_for(host))
    assert Release(params(host, release="", action="inspect"), system_for(host)).target == R1


def run_main(arguments, system_class, check_mode=False):
    """The module as Ansible runs it: its argument spec, then exit_json or fail_json (both exit)."""
    from ansible.module_utils.testing import patch_module_args
    with patch_module_args({**arguments, "_ansible_check_mode": check_mode}), pytest.raises(SystemExit) as exited:
        flask_app_release.main(system_class)
    return exited.value.code


def test_the_module_fails_with_the_revert_in_its_message(host, capsys):
    write(host / "etc" / "settings.env.staged", "PORT=8080\nTIMEOUT=31\n")
    system = system_for(host, broken={R2})
    arguments = params(host, health={"path": "/healthz", "release_key": "release", "timeout": "3"})
    assert run_main(arguments, lambda module: system) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] and result["outcome"] == "reverted" and result["changed"]
    assert f"reverted to release {R1} and the settings it ran with" in result["msg"]
    assert result["journal"] == f"journalctl -u {SERVICE}"


def test_the_module_refuses_a_missing_rollback_target_before_reading_on(host, capsys):
    arguments = params(host, release=R3, rollback=True)
    assert run_main(arguments, lambda module: system_for(host)) == 1
    assert json.loads(capsys.readouterr().out)["msg"].startswith(f"flask_app_rollback_release={R3} is not installed")


def test_the_module_in_check_mode_reports_the_switch_and_changes_nothing(host, capsys):
    system = system_for(host)
    assert run_main(params(host), lambda module: system, check_mode=True) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["changed"], result["outcome"], system.calls) == (True, "would switch", [])


def test_the_metrics_listener_is_not_where_the_app_answers(host):
    # Its port is below the app's: a revert must still probe the app's, and a drain wait for the app's clients.
    system = system_for(host)
    system.sockets = [(ipaddress.ip_address("0.0.0.0"), 8000), (ipaddress.ip_address("0.0.0.0"), 8080)]
    result = run(host, system, action="inspect", other_ports=[8000])
    assert result["listening"] == [{"address": "0.0.0.0", "port": 8080}]
