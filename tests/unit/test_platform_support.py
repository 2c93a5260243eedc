"""supported_platform_errors, and what each supported release needs in each role that uses it."""

import pathlib
import re

import pytest
import yaml

import platform_support

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLES = ("flask_app", "nginx_lb")
SUPPORTED = [
    {"distribution": "Debian", "version": "12"},
    {"distribution": "Debian", "version": "13"},
    {"distribution": "Ubuntu", "version": "24.04"},
]


def facts(distribution, version, major=None, release=""):
    return {"distribution": distribution, "distribution_version": version,
            "distribution_major_version": major or version.split(".")[0], "distribution_release": release}


def load(path):
    with path.open(encoding="utf-8") as stream:
        return yaml.safe_load(stream) or {}


# Each supported release by the codename meta/main.yml lists it under, with
# the systemd it ships.
RELEASES = {
    "bookworm": ({"distribution": "Debian", "version": "12"}, 252),
    "trixie": ({"distribution": "Debian", "version": "13"}, 257),
    "noble": ({"distribution": "Ubuntu", "version": "24.04"}, 255),
}


def supported_platforms(role):
    """The releases a role declares in its metadata (galaxy_info.platforms), as the filter takes them."""
    platforms = load(ROOT / "roles" / role / "meta" / "main.yml")["galaxy_info"]["platforms"]
    return [RELEASES[codename][0] for platform in platforms for codename in platform["versions"]]


@pytest.mark.parametrize("host_facts", [
    facts("Debian", "12.7", release="bookworm"),
    facts("Debian", "12"),
    facts("Debian", "13.1", release="trixie"),
    facts("Ubuntu", "24.04", release="noble"),
], ids=lambda f: f"{f['distribution']}-{f['distribution_version']}")
def test_a_supported_release_passes(host_facts):
    assert platform_support.supported_platform_errors(host_facts, SUPPORTED, "flask_app", "app1") == []


def test_an_unsupported_distribution_is_named_with_what_is_supported():
    errors = platform_support.supported_platform_errors(facts("CentOS", "9", release="Stream"), SUPPORTED,
                                                        "flask_app", "app1")
    assert errors == ["flask_app supports Debian 12, Debian 13, Ubuntu 24.04; app1 is CentOS 9 (Stream)"]


@pytest.mark.parametrize("host_facts, found", [
    (facts("Debian", "11.9", release="bullseye"), "Debian 11.9 (bullseye)"),
    (facts("Ubuntu", "22.04", release="jammy"), "Ubuntu 22.04 (jammy)"),
    # Ubuntu is numbered by year and month: 24.10 is not 24.04.
    (facts("Ubuntu", "24.10", release="oracular"), "Ubuntu 24.10 (oracular)"),
    # Debian testing has no version yet, only its codename.
    (facts("Debian", "n/a", major="n/a", release="forky"), "Debian n/a (forky)"),
], ids=lambda value: value if isinstance(value, str) else None)
def test_an_unsupported_version_is_named_with_what_is_supported(host_facts, found):
    (error,) = platform_support.supported_platform_errors(host_facts, SUPPORTED, "nginx_lb", "lb1")
    assert error == f"nginx_lb supports Debian 12, Debian 13, Ubuntu 24.04; lb1 is {found}"


def test_a_debian_major_version_does_not_match_an_ubuntu_release():
    assert platform_support.supported_platform_errors(facts("Ubuntu", "12.04"), SUPPORTED, "flask_app", "app1")


def test_a_host_without_facts_is_refused_and_said_so():
    (error,) = platform_support.supported_platform_errors({}, SUPPORTED, "flask_app", "app1")
    assert error.endswith("app1 is of an unknown distribution (no facts about it were gathered)")
    assert platform_support.supported_platform_errors(None, SUPPORTED, "flask_app", "app1") == [error]


def test_the_roles_share_one_rule():
    # nginx_lb's plugin is a link to flask_app's: one file, never two copies that drift.
    shared = ROOT / "roles" / "nginx_lb" / "filter_plugins" / "platform_support.py"
    assert shared.is_symlink()
    assert shared.resolve() == (ROOT / "roles" / "flask_app" / "filter_plugins" / "platform_support.py").resolve()


@pytest.mark.parametrize("role", ROLES)
def test_the_roles_support_the_same_releases(role):
    assert supported_platforms(role) == SUPPORTED


@pytest.mark.parametrize("role", ROLES)
def test_each_supported_release_has_its_vars_file_and_no_other_has_one(role):
    vars_dir = ROOT / "roles" / role / "vars"
    expected = {f"{p['distribution']}-{p['version']}.yml" for p in supported_platforms(role)}
    present = {path.name for path in vars_dir.glob("*-*.yml")}
    assert present == expected


@pytest.mark.parametrize("role", ROLES)
def test_each_release_file_sets_the_same_variables(role):
    keys = {name: set(load(ROOT / "roles" / role / "vars" / name)) for name in
            (f"{p['distribution']}-{p['version']}.yml" for p in supported_platforms(role))}
    assert len(set(map(frozenset, keys.values()))) == 1, keys


# The systemd release that first read each directive of the service's unit
# (systemd's NEWS). A directive newer than a supported release's systemd
# would be ignored there with a warning, leaving a hole in the sandbox; one
# that is needed must then come from the release's vars, not the template.
UNIT_DIRECTIVE_SINCE = {
    "Description": 1, "Documentation": 1, "After": 1, "Wants": 1, "Type": 1, "NotifyAccess": 1, "User": 1,
    "Group": 1, "WorkingDirectory": 1, "EnvironmentFile": 1, "Environment": 1, "ExecStart": 1, "ExecReload": 1,
    "KillMode": 1, "TimeoutStopSec": 1, "Restart": 1, "RestartSec": 1, "SyslogIdentifier": 1, "UMask": 1,
    "WantedBy": 1, "PrivateTmp": 1, "CapabilityBoundingSet": 1, "PrivateDevices": 209,
    "RuntimeDirectory": 211, "RuntimeDirectoryMode": 211, "NoNewPrivileges": 187, "ProtectSystem": 214,
    "ProtectHome": 214, "SystemCallArchitectures": 187, "SystemCallFilter": 187, "SystemCallErrorNumber": 187,
    "RestrictAddressFamilies": 211, "AmbientCapabilities": 229, "ProtectKernelTunables": 232,
    "ProtectKernelModules": 232, "ProtectControlGroups": 232, "RestrictRealtime": 231,
    "RestrictNamespaces": 233, "MemoryDenyWriteExecute": 231, "LockPersonality": 235, "RemoveIPC": 232,
    "ProtectHostname": 242, "RestrictSUIDSGID": 242, "ProtectKernelLogs": 244, "ProtectClock": 245,
    "ProtectProc": 247,
}


def test_every_directive_of_the_unit_is_read_by_every_supported_release_s_systemd():
    template = (ROOT / "roles" / "flask_app" / "templates" / "etc" / "systemd" / "system"
                / "flask_app.service.j2").read_text()
    directives = set(re.findall(r"^([A-Z][A-Za-z]+)=", template, re.MULTILINE))
    assert sorted(directives - UNIT_DIRECTIVE_SINCE.keys()) == [], "add the directive's first systemd release above"
    oldest = min(systemd for platform, systemd in RELEASES.values() if platform in supported_platforms("flask_app"))
    assert {name: UNIT_DIRECTIVE_SINCE[name] for name in directives if UNIT_DIRECTIVE_SINCE[name] > oldest} == {}
