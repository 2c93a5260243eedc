"""host_state, run as Ansible runs it, with dpkg-query and systemctl answered by a recorder."""

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from tests.support.ansible_module import Exited, trap_exits

import host_state



@pytest.fixture
def host(monkeypatch):
    """What the host's tools answer: set `dpkg` (stdout), `systemctl` ((rc, stdout)) or None for a missing tool."""
    answers = {"dpkg": "", "systemctl": (0, "ActiveState=active\nUnitFileState=enabled\n"), "commands": []}

    def get_bin_path(self, name, *args, **kwargs):
        key = "dpkg" if name == "dpkg-query" else name
        return None if answers[key] is None else f"/usr/bin/{name}"

    def run_command(self, command, *args, **kwargs):
        answers["commands"].append(command)
        if command[0].endswith("dpkg-query"):
            return 1, answers["dpkg"], ""
        rc, out = answers["systemctl"]
        return rc, out, ""

    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", get_bin_path)
    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    trap_exits(monkeypatch)
    return answers


def run(**args):
    with patch_module_args(args):
        with pytest.raises(Exited) as exited:
            host_state.main()
    assert not exited.value.failed, exited.value.result
    return exited.value.result


def test_packages_dpkg_lists_as_installed_are_not_missing(host):
    # "ii" installed; "rc" removed with its config left; an arch suffix; "nginx-extras" unknown to dpkg.
    host["dpkg"] = "ii nginx:amd64\nrc nginx-common\n"
    result = run(packages=["nginx", "nginx-common", "nginx-extras"])
    assert result["missing_packages"] == ["nginx-common", "nginx-extras"] and not result["changed"]
    assert host["commands"][0][-3:] == ["nginx", "nginx-common", "nginx-extras"]


def test_without_dpkg_every_package_is_missing(host):
    host["dpkg"] = None
    assert run(packages=["nginx"])["missing_packages"] == ["nginx"]


def test_no_packages_asks_dpkg_nothing(host):
    run()
    assert not any(command[0].endswith("dpkg-query") for command in host["commands"])


def test_kernel_settings_are_read_under_proc_sys(host, monkeypatch):
    present = {"/proc/sys/net/ipv4/tcp_tw_reuse"}
    monkeypatch.setattr(host_state.os.path, "exists", lambda path: path in present)
    monkeypatch.setattr(host_state.os, "access", lambda path, mode: False)
    result = run(sysctl=["net.ipv4.tcp_tw_reuse", "net.ipv4.no_such_setting"])
    assert result["sysctl"] == {"net.ipv4.tcp_tw_reuse": {"exists": True, "writeable": False},
                                "net.ipv4.no_such_setting": {"exists": False, "writeable": False}}


def test_existing_paths_are_reported_in_order(host, tmp_path):
    (tmp_path / "default").write_text("")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    paths = [str(tmp_path / name) for name in ("missing", "dangling", "default")]
    assert run(paths=paths)["existing_paths"] == paths[1:]


def test_the_units_state_is_read_from_systemd_by_their_full_name(host):
    host["systemctl"] = (0, "ActiveState=failed\nUnitFileState=disabled\n")
    result = run(units=["nginx.service", "certbot.timer"])
    assert result["units"] == {"nginx.service": {"active": "failed", "enabled": "disabled"},
                               "certbot.timer": {"active": "failed", "enabled": "disabled"}}
    assert [command[-1] for command in host["commands"]] == ["nginx.service", "certbot.timer"]


@pytest.mark.parametrize("systemctl", [None, (1, "")])
def test_a_unit_systemd_cannot_tell_of_is_inactive(host, systemctl):
    host["systemctl"] = systemctl
    assert run(units=["nginx.service"])["units"] == {"nginx.service": {"active": "inactive", "enabled": ""}}


def test_files_report_checksum_owner_group_and_mode_as_the_template_module_compares(host, tmp_path):
    import grp
    import hashlib
    import os
    import pwd

    written = tmp_path / "site.conf"
    written.write_text("server {}\n")
    written.chmod(0o640)
    (tmp_path / "a-directory").mkdir()
    paths = [str(written), str(tmp_path / "missing.conf"), str(tmp_path / "a-directory")]
    files = run(files=paths)["files"]
    assert files == {
        str(written): {"checksum": hashlib.sha1(b"server {}\n").hexdigest(), "owner": pwd.getpwuid(os.getuid()).pw_name,
                       "group": grp.getgrgid(os.getgid()).gr_name, "mode": "0640"},
        str(tmp_path / "missing.conf"): {},
        str(tmp_path / "a-directory"): {},
    }


def test_directories_report_owner_group_and_mode_as_the_file_module_compares(host, tmp_path):
    import grp
    import os
    import pwd

    made = tmp_path / "tls"
    made.mkdir()
    made.chmod(0o700)
    (tmp_path / "a-file").write_text("")
    (tmp_path / "a-link").symlink_to(made)
    paths = [str(made), str(tmp_path / "missing"), str(tmp_path / "a-file"), str(tmp_path / "a-link")]
    directories = run(directories=paths)["directories"]
    assert directories == {
        str(made): {"owner": pwd.getpwuid(os.getuid()).pw_name, "group": grp.getgrgid(os.getgid()).gr_name,
                    "mode": "0700"},
        # A file task with state=directory would not take a file or a link for the directory it makes.
        str(tmp_path / "missing"): {}, str(tmp_path / "a-file"): {}, str(tmp_path / "a-link"): {},
    }


def test_no_units_asks_systemd_nothing(host):
    assert run()["units"] == {}
    assert host["commands"] == []


def test_an_accounts_groups_include_its_primary_group_and_a_missing_account_is_none(host, monkeypatch):
    monkeypatch.setattr(host_state.pwd, "getpwnam",
                        lambda name: host_state.pwd.struct_passwd(("mtail", "x", 120, 130, "", "/", "/bin/false"))
                        if name == "mtail" else (_ for _ in ()).throw(KeyError(name)))
    monkeypatch.setattr(host_state.grp, "getgrall", lambda: [
        host_state.grp.struct_group(("adm", "x", 4, ["syslog", "mtail"])),
        host_state.grp.struct_group(("www-data", "x", 33, ["syslog"]))])
    monkeypatch.setattr(host_state.grp, "getgrgid", lambda gid: host_state.grp.struct_group(("mtail", "x", gid, [])))
    assert run(users=["mtail", "nobody-here"])["users"] == {"mtail": ["adm", "mtail"], "nobody-here": None}
