"""What staging skips when the host has it (roles/flask_app/library/flask_app_host_state.py)."""

import grp
import hashlib
import os
import pwd

import flask_app_host_state as host_state


class FakeModule:
    """The two AnsibleModule methods the package reader calls, with dpkg-query's answer given."""

    def __init__(self, dpkg_output, dpkg_query="/usr/bin/dpkg-query"):
        self.dpkg_output, self.dpkg_query, self.commands = dpkg_output, dpkg_query, []

    def get_bin_path(self, name):
        return self.dpkg_query if name == "dpkg-query" else None

    def run_command(self, argv):
        self.commands.append(argv)
        return 1, self.dpkg_output, ""

    def sha1(self, path):
        with open(path, "rb") as handle:
            return hashlib.sha1(handle.read()).hexdigest()


def test_packages_dpkg_does_not_list_as_installed_are_missing():
    module = FakeModule("python3\tinstall ok installed\npython3-venv:amd64\tdeinstall ok config-files\n")
    assert host_state._missing_packages(module, ["python3", "python3-venv", "iproute2"]) == ["python3-venv", "iproute2"]
    assert module.commands[0][-3:] == ["python3", "python3-venv", "iproute2"]


def test_no_packages_asked_for_runs_nothing():
    module = FakeModule("")
    assert host_state._missing_packages(module, []) == [] and module.commands == []


def test_without_dpkg_every_package_is_missing():
    assert host_state._missing_packages(FakeModule("", dpkg_query=None), ["python3"]) == ["python3"]


def test_checksums_and_attributes_of_files(tmp_path):
    present = tmp_path / "settings.env.staged"
    present.write_text("A=1\n")
    present.chmod(0o640)
    missing = tmp_path / "missing"
    paths = [str(present), str(missing)]
    assert host_state._checksums(FakeModule(""), paths) == {
        str(present): hashlib.sha1(b"A=1\n").hexdigest(), str(missing): ""}
    me = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    assert host_state._file_attributes(paths) == {
        str(present): {"owner": me, "group": group, "mode": "0640"}, str(missing): {}}


def test_directories_differ_by_presence_kind_owner_group_and_mode(tmp_path):
    me = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    good, loose, plain = tmp_path / "good", tmp_path / "loose", tmp_path / "plain"
    good.mkdir(mode=0o755)
    good.chmod(0o755)
    loose.mkdir()
    loose.chmod(0o775)
    plain.write_text("")
    wanted = [{"path": str(path), "owner": me, "group": group, "mode": "0755"}
              for path in (good, loose, plain, tmp_path / "absent")]
    wanted.append({"path": str(good), "owner": "nobody", "group": group, "mode": "755"})
    assert host_state._directory_differences(wanted) == [
        f"directory {loose}: mode 0775, wanted 0755",
        f"directory {plain}: not a directory",
        f"directory {tmp_path / 'absent'}: missing",
        f"directory {good}: owner {me}, wanted nobody",
    ]


def test_an_account_missing_or_unlike_the_wanted_one_differs():
    root = pwd.getpwnam("root")
    root_group = grp.getgrgid(root.pw_gid).gr_name
    assert host_state._account_differences(
        {"user": "root", "group": "no-such-group-here", "home": "/", "shell": "/bin/sh", "password": "!"}
    ) == ["group no-such-group-here: missing"]
    assert host_state._account_differences(
        {"user": "no-such-user-here", "group": root_group, "home": "/", "shell": "/bin/sh", "password": "!"}
    ) == ["user no-such-user-here: missing"]
    differences = host_state._account_differences(
        {"user": "root", "group": root_group, "home": "/nowhere", "shell": root.pw_shell, "password": "not-root's"})
    assert differences[0] == f"user root: home {root.pw_dir}, wanted /nowhere"
    readable = os.access("/etc/shadow", os.R_OK)
    assert differences[-1] == ("user root: password field not as wanted" if readable
                               else "user root: password not readable (Permission denied)")
