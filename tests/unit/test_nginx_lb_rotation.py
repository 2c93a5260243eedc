"""nginx_lb_rotation, run as Ansible runs it, with nginx's check and reload replaced by a recorder."""

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from tests.support.ansible_module import Exited, trap_exits

import nginx_lb_rotation

SITE = "hello-service"
# The real seam, kept before the fixture below replaces it.
REAL_NGINX = nginx_lb_rotation.Nginx



class FakeNginx:
    """Records the calls; `check_ok` / `reload_ok` say how nginx answers. The candidate is read when checked."""

    check_ok = reload_ok = True
    calls = []

    def __init__(self, module, checker):
        self.checker = checker

    def check(self, target, candidate):
        with open(candidate, encoding="utf-8") as handle:
            FakeNginx.calls.append(("check", self.checker, target, handle.read()))
        return FakeNginx.check_ok, "" if FakeNginx.check_ok else 'invalid parameter "wieght=1"'

    def reload(self):
        FakeNginx.calls.append(("reload",))
        return FakeNginx.reload_ok, "" if FakeNginx.reload_ok else "nginx.service is not active, cannot reload."


@pytest.fixture(autouse=True)
def fake_nginx(monkeypatch):
    FakeNginx.check_ok = FakeNginx.reload_ok = True
    FakeNginx.calls = []
    monkeypatch.setattr(nginx_lb_rotation, "Nginx", FakeNginx)
    trap_exits(monkeypatch)
    return FakeNginx


@pytest.fixture
def dirs(tmp_path):
    conf, state = tmp_path / "conf.d", tmp_path / "state"
    conf.mkdir()
    return {"conf_dir": str(conf), "state_dir": str(state)}


def peer(host, port=8080, **flags):
    return {"host": host, "address": f"10.0.0.{host[-1]}", "port": port, "endpoint": f"10.0.0.{host[-1]}:{port}",
            "weight": 1, "max_fails": 1, "fail_timeout": 10, "backup": False, "down": False, **flags}


THREE = [peer("app1"), peer("app2"), peer("app3")]


def run(dirs, check_mode=False, diff=False, expect_failure=False, **args):
    with patch_module_args({"site": SITE, **dirs, **args, "_ansible_check_mode": check_mode, "_ansible_diff": diff}):
        with pytest.raises(Exited) as exited:
            nginx_lb_rotation.main()
    assert exited.value.failed == expect_failure, exited.value.result
    return exited.value.result


def upstream(dirs):
    with open(f"{dirs['conf_dir']}/{SITE}.upstream", encoding="utf-8") as handle:
        return [line for line in handle.read().splitlines() if not line.startswith("#")]


def stored(dirs):
    with open(f"{dirs['state_dir']}/{SITE}.json", encoding="utf-8") as handle:
        return json.load(handle)


def files(tmp_path):
    return {path.relative_to(tmp_path): path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}


def rendered(dirs, peers=THREE):
    run(dirs, state="rendered", peers=peers, reload=False)
    FakeNginx.calls.clear()


def test_rendered_writes_the_state_and_the_upstream_checked_but_leaves_the_reload_to_the_caller(dirs):
    result = run(dirs, state="rendered", peers=[peer("app1"), peer("app2", backup=True), peer("app3", down=True)],
                 reload=False)
    assert result["changed"] and result["configured"]
    assert upstream(dirs) == [
        "server 10.0.0.1:8080 weight=1 max_fails=1 fail_timeout=10s;",
        "server 10.0.0.2:8080 weight=1 max_fails=1 fail_timeout=10s backup;",
        "server 10.0.0.3:8080 weight=1 max_fails=1 fail_timeout=10s down;",
    ]
    assert stored(dirs)["drained"] == [] and [p["host"] for p in stored(dirs)["peers"]] == ["app1", "app2", "app3"]
    upstream_file = f"{dirs['conf_dir']}/{SITE}.upstream"
    assert [call[:3] for call in FakeNginx.calls] == [("check", "/usr/local/sbin/nginx-lb-validate", upstream_file)]
    assert (result["in_rotation"], result["backup"], result["down"]) == (["app1"], ["app2"], ["app3"])


def test_rendered_again_changes_nothing_and_calls_nothing(dirs, tmp_path):
    rendered(dirs)
    before = files(tmp_path)
    result = run(dirs, state="rendered", peers=THREE, reload=False)
    assert not result["changed"] and FakeNginx.calls == [] and files(tmp_path) == before


def test_rendered_with_reload_reloads_once_after_the_change(dirs):
    run(dirs, state="rendered", peers=THREE)
    assert [call[0] for call in FakeNginx.calls] == ["check", "reload"]


def test_rendered_brings_every_drained_backend_back(dirs):
    rendered(dirs)
    run(dirs, state="drained", backends=["app1"])
    result = run(dirs, state="rendered", peers=THREE, reload=False)
    assert result["changed"] and result["drained"] == [] and result["in_rotation"] == ["app1", "app2", "app3"]
    assert not any(line.endswith(" down;") for line in upstream(dirs))


def test_rendered_takes_a_changed_inventory(dirs):
    rendered(dirs)
    result = run(dirs, state="rendered", peers=[peer("app1", port=8081), peer("app4")], reload=False)
    assert result["changed"] and [p["host"] for p in result["peers"]] == ["app1", "app4"]
    assert upstream(dirs)[0].startswith("server 10.0.0.1:8081 ")


def test_rendered_needs_peers(dirs):
    assert "state=rendered needs peers" in run(dirs, state="rendered", expect_failure=True)["msg"]


def test_rendered_refuses_an_upstream_where_nothing_serves(dirs, tmp_path):
    result = run(dirs, state="rendered", peers=[peer("app1", down=True), peer("app2", backup=True)],
                 expect_failure=True)
    assert "every backend of the upstream is down or backup" in result["msg"]
    assert files(tmp_path) == {} and FakeNginx.calls == []


def test_check_mode_reports_the_change_with_a_diff_and_writes_nothing(dirs, tmp_path):
    rendered(dirs)
    before = files(tmp_path)
    result = run(dirs, check_mode=True, diff=True, state="rendered", peers=THREE + [peer("app4")])
    assert result["changed"] and result["in_rotation"] == ["app1", "app2", "app3", "app4"]
    assert "server 10.0.0.4:8080 " not in result["diff"]["before"]
    assert "server 10.0.0.4:8080 weight=1 max_fails=1 fail_timeout=10s;\n" in result["diff"]["after"]
    assert files(tmp_path) == before and FakeNginx.calls == []


def test_check_mode_on_a_new_load_balancer_changes_nothing(dirs, tmp_path):
    result = run(dirs, check_mode=True, state="rendered", peers=THREE)
    assert result["changed"] and files(tmp_path) == {} and not (tmp_path / "state").exists()


def test_drained_marks_the_backend_down_and_reloads_at_once(dirs):
    rendered(dirs)
    result = run(dirs, state="drained", backends=["app2"])
    assert result["changed"] and result["reloaded"]
    assert result["drained"] == ["app2"] and result["in_rotation"] == ["app1", "app3"]
    assert upstream(dirs)[1] == "server 10.0.0.2:8080 weight=1 max_fails=1 fail_timeout=10s down;"
    assert [call[0] for call in FakeNginx.calls] == ["check", "reload"]
    assert stored(dirs)["drained"] == ["app2"]


def test_drained_again_changes_nothing(dirs):
    rendered(dirs)
    run(dirs, state="drained", backends=["app2"])
    FakeNginx.calls.clear()
    result = run(dirs, state="drained", backends=["app2"])
    assert not result["changed"] and FakeNginx.calls == []


def test_drained_in_check_mode_writes_nothing(dirs, tmp_path):
    rendered(dirs)
    before = files(tmp_path)
    result = run(dirs, check_mode=True, state="drained", backends=["app2"])
    assert result["changed"] and result["drained"] == ["app2"]
    assert files(tmp_path) == before and FakeNginx.calls == []


def test_draining_the_last_backend_in_rotation_is_refused(dirs, tmp_path):
    rendered(dirs, [peer("app1"), peer("app2", down=True), peer("app3", backup=True)])
    before = files(tmp_path)
    result = run(dirs, state="drained", backends=["app1"], expect_failure=True)
    assert result["msg"].startswith("taking app1 out of rotation would leave no backend serving")
    assert files(tmp_path) == before and FakeNginx.calls == []


def test_a_batch_counts_as_out_before_any_of_it_is_drained(dirs):
    rendered(dirs)
    run(dirs, state="drained", backends=["app3"])
    result = run(dirs, state="drained", backends=["app1"], batch=["app1", "app2"], expect_failure=True)
    assert result["msg"].startswith("taking app1, app2 out of rotation would leave no backend serving")
    assert stored(dirs)["drained"] == ["app3"]


def test_a_batch_that_leaves_one_backend_serving_goes_out(dirs):
    rendered(dirs)
    for backend in ("app1", "app2"):
        result = run(dirs, state="drained", backends=[backend], batch=["app1", "app2"])
    assert result["drained"] == ["app1", "app2"] and result["in_rotation"] == ["app3"]


def test_a_backend_not_in_the_upstream_is_ignored(dirs, tmp_path):
    rendered(dirs)
    before = files(tmp_path)
    for state in ("drained", "in_rotation"):
        result = run(dirs, state=state, backends=["app9"])
        assert not result["changed"]
    assert files(tmp_path) == before


def test_in_rotation_puts_the_backend_back(dirs):
    rendered(dirs)
    run(dirs, state="drained", backends=["app1", "app2"])
    FakeNginx.calls.clear()
    result = run(dirs, state="in_rotation", backends=["app1"])
    assert result["changed"] and result["drained"] == ["app2"] and result["in_rotation"] == ["app1", "app3"]
    assert [call[0] for call in FakeNginx.calls] == ["check", "reload"]


def test_in_rotation_without_reload_writes_the_change_checked_for_the_next_reload(dirs):
    rendered(dirs)
    run(dirs, state="drained", backends=["app1"])
    FakeNginx.calls.clear()
    result = run(dirs, state="in_rotation", backends=["app1"], reload=False)
    assert result["changed"] and not result["reloaded"] and result["reload_pending"]
    assert [call[0] for call in FakeNginx.calls] == ["check"]
    assert result["in_rotation"] == ["app1", "app2", "app3"] and stored(dirs)["reload_pending"]


def test_the_next_drain_applies_a_waiting_change_in_its_one_reload(dirs):
    rendered(dirs)
    run(dirs, state="drained", backends=["app1"])
    run(dirs, state="in_rotation", backends=["app1"], reload=False)
    FakeNginx.calls.clear()
    result = run(dirs, state="drained", backends=["app2"])
    assert result["reloaded"] and not result["reload_pending"] and "reload_pending" not in stored(dirs)
    assert [call[0] for call in FakeNginx.calls] == ["check", "reload"]


def test_a_batch_drained_by_its_first_call_costs_one_reload(dirs):
    rendered(dirs)
    first = run(dirs, state="drained", backends=["app1", "app2"], batch=["app1", "app2"])
    second = run(dirs, state="drained", backends=["app2", "app1"], batch=["app1", "app2"])
    assert first["reloaded"] and not second["changed"]
    assert [call[0] for call in FakeNginx.calls] == ["check", "reload"]


def test_a_waiting_change_is_reloaded_by_the_next_call_once(dirs):
    rendered(dirs)
    run(dirs, state="drained", backends=["app1"])
    run(dirs, state="in_rotation", backends=["app1"], reload=False)
    FakeNginx.calls.clear()
    first = run(dirs, state="in_rotation", backends=["app1"])
    again = run(dirs, state="in_rotation", backends=["app1"])
    assert first["changed"] and first["reloaded"] and not first["reload_pending"]
    assert not again["changed"] and [call[0] for call in FakeNginx.calls] == ["reload"]


def test_a_waiting_change_in_check_mode_is_reported_and_not_reloaded(dirs):
    rendered(dirs)
    run(dirs, state="drained", backends=["app1"])
    run(dirs, state="in_rotation", backends=["app1"], reload=False)
    FakeNginx.calls.clear()
    result = run(dirs, state="in_rotation", backends=["app1"], check_mode=True)
    assert result["changed"] and FakeNginx.calls == [] and stored(dirs)["reload_pending"]


def test_rendered_hands_a_waiting_change_to_its_caller_reload(dirs):
    rendered(dirs)
    run(dirs, state="drained", backends=["app1"])
    run(dirs, state="in_rotation", backends=["app1"], reload=False)
    FakeNginx.calls.clear()
    result = run(dirs, state="rendered", peers=THREE, reload=False)
    # The upstream file is already right; the role's handler reloads because the task changed.
    assert result["changed"] and FakeNginx.calls == [] and "reload_pending" not in stored(dirs)
    assert not run(dirs, state="rendered", peers=THREE, reload=False)["changed"]


def test_a_failed_reload_leaves_the_change_waiting(dirs):
    rendered(dirs)
    FakeNginx.reload_ok = False
    run(dirs, state="drained", backends=["app1"], expect_failure=True)
    assert stored(dirs)["reload_pending"]
    FakeNginx.reload_ok = True
    # The same drain again changes no file: it reloads for the change that waits.
    assert run(dirs, state="drained", backends=["app1"])["reloaded"]


def test_drained_by_the_backend_is_out_of_rotation_with_nginx_left_as_it_runs(dirs, tmp_path):
    rendered(dirs)
    before = upstream(dirs)
    result = run(dirs, state="drained", backends=["app1"], drained_by="backend")
    assert result["changed"] and not result["reloaded"] and FakeNginx.calls == []
    assert result["drained"] == ["app1"] and result["refusing"] == ["app1"] and result["in_rotation"] == ["app2", "app3"]
    assert upstream(dirs) == before and stored(dirs)["refusing"] == ["app1"]
    again = run(dirs, state="drained", backends=["app1"], drained_by="backend")
    assert not again["changed"]


def test_a_backend_refusing_connections_comes_back_with_no_reload(dirs):
    rendered(dirs)
    run(dirs, state="drained", backends=["app1", "app2"], batch=["app1", "app2"], drained_by="backend")
    result = run(dirs, state="in_rotation", backends=["app1"], peers=THREE)
    assert result["changed"] and not result["reloaded"] and result["drained"] == ["app2"]
    assert FakeNginx.calls == []


def test_the_last_backend_check_counts_the_backends_refusing_connections(dirs, tmp_path):
    rendered(dirs)
    run(dirs, state="drained", backends=["app1"], drained_by="backend")
    run(dirs, state="drained", backends=["app2"])
    result = run(dirs, state="drained", backends=["app3"], drained_by="backend", expect_failure=True)
    assert "taking app3 out of rotation would leave no backend serving" in result["msg"]


FOUR = THREE + [peer("app4")]


def test_backends_refusing_as_many_as_nginx_tries_are_refused_and_nothing_is_written(dirs, tmp_path):
    run(dirs, state="rendered", peers=FOUR, next_upstream_tries=2, next_upstream=["error", "timeout"])
    before = files(tmp_path)
    result = run(dirs, state="drained", backends=["app1"], batch=["app1", "app2"], drained_by="backend",
                 expect_failure=True)
    assert "app1, app2 would refuse connections at once" in result["msg"]
    assert "nginx_lb_next_upstream_tries=2" in result["msg"] and "rolling_serial" in result["msg"]
    assert files(tmp_path) == before


def test_backends_refusing_fewer_than_nginx_tries_or_with_no_limit_are_drained(dirs):
    run(dirs, state="rendered", peers=FOUR, next_upstream_tries=3, next_upstream=["error", "timeout"])
    query = run(dirs)
    assert (query["next_upstream_tries"], query["next_upstream_on_error"]) == (3, True)
    assert run(dirs, state="drained", backends=["app1"], batch=["app1", "app2"], drained_by="backend")["changed"]
    # Kept through the drain: the next batch is checked against the same tries.
    assert stored(dirs)["next_upstream_tries"] == 3
    run(dirs, state="rendered", peers=FOUR, next_upstream_tries=0, next_upstream=["error", "timeout"])
    result = run(dirs, state="drained", backends=["app1"], batch=["app1", "app2", "app3"], drained_by="backend")
    assert result["refusing"] == ["app1"]


def test_a_backend_already_down_in_nginx_is_not_counted_among_the_refusing(dirs):
    run(dirs, state="rendered", peers=FOUR, next_upstream_tries=2, next_upstream=["error", "timeout"])
    run(dirs, state="drained", backends=["app2"])
    result = run(dirs, state="drained", backends=["app1"], batch=["app1", "app2"], drained_by="backend")
    assert result["refusing"] == ["app1"]


@pytest.mark.parametrize("conditions", [["timeout", "http_502"], ["error", "off"]])
def test_a_drain_by_the_backend_is_refused_where_nginx_would_not_pass_a_refused_request_on(dirs, conditions):
    run(dirs, state="rendered", peers=THREE, next_upstream_tries=3, next_upstream=conditions)
    result = run(dirs, state="drained", backends=["app1"], drained_by="backend", expect_failure=True)
    assert "Add error to nginx_lb_next_upstream" in result["msg"]
    # A drain on nginx needs no retry.
    assert run(dirs, state="drained", backends=["app1"])["reloaded"]


def test_a_state_written_before_the_retry_settings_were_kept_is_not_checked(dirs):
    rendered(dirs)
    assert "next_upstream_tries" not in stored(dirs)
    result = run(dirs, state="drained", backends=["app1"], batch=["app1", "app2"], drained_by="backend")
    assert result["refusing"] == ["app1"]


def test_a_backend_that_stays_out_goes_from_refusing_to_down_in_one_reload(dirs):
    rendered(dirs)
    run(dirs, state="drained", backends=["app1", "app2"], batch=["app1", "app2"], drained_by="backend")
    result = run(dirs, state="drained", backends=["app2"])
    assert result["reloaded"] and result["refusing"] == ["app1"] and result["drained"] == ["app1", "app2"]
    assert [line.endswith(" down;") for line in upstream(dirs)] == [False, True, False]


def test_a_backend_nginx_has_down_stays_down_when_a_rollout_drains_it_and_comes_back_with_a_reload(dirs):
    rendered(dirs)
    run(dirs, state="drained", backends=["app1"])
    FakeNginx.calls.clear()
    assert not run(dirs, state="drained", backends=["app1"], drained_by="backend")["changed"]
    result = run(dirs, state="in_rotation", backends=["app1"], peers=THREE)
    # nginx sends nothing to app1 until it reloads: the next drain must not find it still out.
    assert result["reloaded"] and result["drained"] == [] and [call[0] for call in FakeNginx.calls] == ["check", "reload"]


def test_a_backend_refusing_connections_and_back_at_a_new_port_reloads(dirs):
    rendered(dirs)
    run(dirs, state="drained", backends=["app1"], drained_by="backend")
    moved = [peer("app1", port=8081), peer("app2"), peer("app3")]
    assert run(dirs, state="in_rotation", backends=["app1"], peers=moved)["reloaded"]
    assert upstream(dirs)[0].startswith("server 10.0.0.1:8081 ")


def test_a_state_written_before_refusing_existed_reads_as_none_refusing(dirs):
    rendered(dirs)
    older = {key: value for key, value in stored(dirs).items() if key != "refusing"}
    with open(f"{dirs['state_dir']}/{SITE}.json", "w", encoding="utf-8") as handle:
        json.dump(older, handle)
    assert not run(dirs, state="rendered", peers=THREE, reload=False)["changed"]
    assert run(dirs)["refusing"] == []


def test_in_rotation_takes_the_backends_new_port_and_leaves_the_others(dirs):
    rendered(dirs)
    run(dirs, state="drained", backends=["app1"])
    moved = [peer("app1", port=8081), peer("app2", port=8081), peer("app3", port=8081)]
    run(dirs, state="in_rotation", backends=["app1"], peers=moved)
    assert [line.split()[1] for line in upstream(dirs)] == ["10.0.0.1:8081", "10.0.0.2:8080", "10.0.0.3:8080"]


def test_in_rotation_leaves_a_backend_the_inventory_marks_down(dirs):
    rendered(dirs)
    run(dirs, state="drained", backends=["app1"])
    result = run(dirs, state="in_rotation", backends=["app1"], peers=[peer("app1", down=True)])
    assert result["drained"] == [] and result["down"] == ["app1"] and "app1" not in result["in_rotation"]
    assert upstream(dirs)[0].endswith(" down;")


def test_a_config_nginx_refuses_leaves_everything_as_it_was(dirs, tmp_path):
    rendered(dirs)
    before = files(tmp_path)
    FakeNginx.check_ok = False
    result = run(dirs, state="drained", backends=["app1"], expect_failure=True)
    assert result["msg"] == 'nginx -t refuses the upstream, left unchanged: invalid parameter "wieght=1"'
    assert files(tmp_path) == before and [call[0] for call in FakeNginx.calls] == ["check"]
    assert not any(path.name.startswith(".") and path.name != f".{SITE}.lock" for path in tmp_path.rglob("*"))


def test_a_failed_reload_fails_the_task(dirs):
    rendered(dirs)
    FakeNginx.reload_ok = False
    result = run(dirs, state="drained", backends=["app1"], expect_failure=True)
    assert result["msg"] == "the upstream changed but nginx did not reload: nginx.service is not active, cannot reload."


def test_query_reports_and_changes_nothing(dirs, tmp_path):
    rendered(dirs)
    run(dirs, state="drained", backends=["app2"])
    FakeNginx.calls.clear()
    before = files(tmp_path)
    result = run(dirs)
    assert not result["changed"] and result["configured"]
    assert (result["in_rotation"], result["drained"]) == (["app1", "app3"], ["app2"])
    assert [(p["host"], p["drained"]) for p in result["peers"]] == [("app1", False), ("app2", True), ("app3", False)]
    assert files(tmp_path) == before and FakeNginx.calls == []


def test_a_site_not_configured_yet_is_left_alone(dirs, tmp_path):
    for state in ("query", "drained", "in_rotation"):
        result = run(dirs, state=state, backends=["app1"])
        assert not result["changed"] and not result["configured"] and result["in_rotation"] == []
    assert files(tmp_path) == {} and FakeNginx.calls == []


def test_a_site_without_a_state_is_not_drained_blindly(dirs, tmp_path):
    (tmp_path / "conf.d" / f"{SITE}.conf").write_text("upstream hello_service { server 10.0.0.1:8080; }\n")
    result = run(dirs, state="drained", backends=["app1"], expect_failure=True)
    assert "has no rotation state" in result["msg"] and "playbooks/loadbalancers.yml" in result["msg"]


def test_a_corrupt_state_is_refused_by_path(dirs, tmp_path):
    rendered(dirs)
    (tmp_path / "state" / f"{SITE}.json").write_text("{not json")
    result = run(dirs, state="drained", backends=["app1"], expect_failure=True)
    assert result["msg"].startswith(f"{tmp_path}/state/{SITE}.json is not a rotation state")


@pytest.mark.parametrize("bad, message", [
    ({"endpoint": "10.0.0.1:8080 down"}, "endpoint must be ADDRESS:PORT"),
    ({"endpoint": "10.0.0.1"}, "endpoint must be ADDRESS:PORT"),
    ({"weight": 0}, "weight must be an integer >= 1"),
    ({"fail_timeout": -1}, "fail_timeout must be an integer >= 0"),
])
def test_a_peer_that_would_not_make_a_server_line_is_refused(dirs, tmp_path, bad, message):
    result = run(dirs, state="rendered", peers=[peer("app1", **bad)], expect_failure=True)
    assert message in result["msg"] and files(tmp_path) == {}


def test_a_host_listed_twice_is_refused(dirs):
    assert "peer app1 is listed twice" in run(dirs, state="rendered", peers=[peer("app1"), peer("app1")],
                                              expect_failure=True)["msg"]


def test_a_site_name_that_is_no_file_name_is_refused(dirs):
    result = run(dirs, site="../etc/passwd", state="drained", backends=["app1"], expect_failure=True)
    assert result["msg"].startswith("site must be a file name")


def test_the_files_are_world_readable_and_no_temporary_file_is_left(dirs, tmp_path):
    rendered(dirs)
    run(dirs, state="drained", backends=["app1"])
    for name in (f"conf.d/{SITE}.upstream", f"state/{SITE}.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644
    assert sorted(path.name for path in tmp_path.rglob(".*")) == [f".{SITE}.lock"]


class RecordingModule:
    def __init__(self, rc):
        self.rc, self.commands = rc, []

    def run_command(self, command):
        self.commands.append(command)
        return self.rc, "", "nginx: [emerg] unknown directive" if self.rc else ""


@pytest.mark.parametrize("rc", [0, 1])
def test_the_real_seam_calls_the_checker_and_reloads_through_systemd(rc):
    module = RecordingModule(rc)
    nginx = REAL_NGINX(module, "/usr/local/sbin/nginx-lb-validate")
    message = "nginx: [emerg] unknown directive" if rc else ""
    assert nginx.check("/etc/nginx/conf.d/s.upstream", "/tmp/candidate") == (rc == 0, message)
    assert nginx.reload() == (rc == 0, message)
    assert module.commands[0] == ["/usr/local/sbin/nginx-lb-validate", "/etc/nginx/conf.d/s.upstream", "/tmp/candidate"]
    assert module.commands[-1] == ["systemctl", "reload", "nginx"]
