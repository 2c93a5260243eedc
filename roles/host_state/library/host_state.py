#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Read what a role decides on about a host, in one round trip: the roles that write files and run services
share it (nginx_lb, monitoring)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_state
short_description: Report a host's missing packages, kernel settings, files, directories, accounts' groups and units
description:
  - Reads, without changing anything, which of I(packages) dpkg does not list
    as installed, whether each kernel setting in I(sysctl) exists under
    C(/proc/sys) and may be written there, which of I(paths) exist, the
    checksum, owner, group and mode of each of I(files), the owner, group and
    mode of each of I(directories), the groups each of I(users) belongs to,
    and each of I(units)' ActiveState and UnitFileState.
  - One module run instead of an apt, a stat per setting, a file, a user, a
    systemd task and the template, copy and file tasks whose files and
    directories are already as wanted.
    On a re-run that changes nothing, those round trips are most of the time
    a host's play takes.
options:
  packages:
    description: Debian packages the role installs; those not installed are returned in RV(missing_packages).
    type: list
    elements: str
    default: []
  sysctl:
    description: Kernel setting names, e.g. C(net.ipv4.tcp_tw_reuse).
    type: list
    elements: str
    default: []
  paths:
    description: Files whose presence the role decides on; those that exist are returned in RV(existing_paths).
    type: list
    elements: path
    default: []
  files:
    description: Files the role writes; their state is returned in RV(files).
    type: list
    elements: path
    default: []
  directories:
    description: Directories the role creates; their state is returned in RV(directories).
    type: list
    elements: path
    default: []
  users:
    description: Accounts whose groups the role decides on; returned in RV(users).
    type: list
    elements: str
    default: []
  units:
    description: Systemd units, by full name (e.g. C(nginx.service), C(certbot.timer)); their state is returned in RV(units).
    type: list
    elements: str
    default: []
"""

RETURN = r"""
missing_packages:
  description: The requested packages dpkg does not list as installed, in the order requested.
  type: list
  elements: str
  returned: always
sysctl:
  description: Per setting name, C(exists) (under /proc/sys) and C(writeable) (not so in a container).
  type: dict
  returned: always
existing_paths:
  description: The requested paths that exist, in the order requested.
  type: list
  elements: str
  returned: always
files:
  description: >-
    Per path of I(files): C(checksum) (SHA-1, as the template and copy modules compare), C(owner),
    C(group) (names) and C(mode) (an octal string such as C("0644")); an empty dict for a path that is
    not a regular file.
  type: dict
  returned: always
directories:
  description: >-
    Per path of I(directories): C(owner), C(group) (names) and C(mode) (an octal string such as
    C("0755")); an empty dict for a path that is not a directory.
  type: dict
  returned: always
users:
  description: >-
    Per account of I(users), the sorted names of every group it belongs to (its primary group too); C(null)
    for an account the host does not have.
  type: dict
  returned: always
units:
  description: >-
    Per unit of I(units), C(active) (ActiveState: active, inactive, failed...; inactive when systemd does
    not know it) and C(enabled) (UnitFileState: enabled, disabled...; empty when systemd does not know it).
  type: dict
  returned: always
"""

import grp
import os
import pwd

from ansible.module_utils.basic import AnsibleModule


def installed_packages(module, packages):
    """The subset of `packages` that dpkg reports as fully installed."""
    if not packages:
        return set()
    dpkg_query = module.get_bin_path("dpkg-query")
    if dpkg_query is None:
        return set()
    # Exits 1 when a package is unknown to dpkg; the ones it knows are still listed.
    _, out, _ = module.run_command([dpkg_query, "--show", "--showformat=${db:Status-Abbrev}${binary:Package}\n",
                                    *packages])
    # "ii " is "desired install, status installed, no error"; the name may carry ":arch".
    return {line[3:].split(":")[0] for line in out.splitlines() if line.startswith("ii ")}


def file_state(module, path):
    """What a template or copy task compares: content checksum, owner, group and mode; {} if no regular file."""
    if not os.path.isfile(path):
        return {}
    info = module.add_path_info({"path": path})
    return {"checksum": module.sha1(path), "owner": info["owner"], "group": info["group"], "mode": info["mode"]}


def directory_state(module, path):
    """What a file task with state=directory compares: owner, group and mode; {} if no directory."""
    if os.path.islink(path) or not os.path.isdir(path):
        return {}
    info = module.add_path_info({"path": path})
    return {"owner": info["owner"], "group": info["group"], "mode": info["mode"]}


def unit_state(module, unit):
    """A unit's (ActiveState, UnitFileState); ("inactive", "") when systemd cannot tell of it."""
    systemctl = module.get_bin_path("systemctl")
    if systemctl is None:
        return "inactive", ""
    rc, out, _ = module.run_command([systemctl, "show", "--property=ActiveState,UnitFileState", unit])
    state = dict(line.partition("=")[::2] for line in out.splitlines()) if rc == 0 else {}
    return state.get("ActiveState") or "inactive", state.get("UnitFileState", "")


def user_groups(name):
    """The sorted names of every group NAME belongs to, as `id -Gn` lists them; None if there is no such account."""
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        return None
    groups = {entry.gr_name for entry in grp.getgrall() if name in entry.gr_mem}
    try:
        groups.add(grp.getgrgid(account.pw_gid).gr_name)
    except KeyError:
        pass
    return sorted(groups)


def main():
    module = AnsibleModule(
        argument_spec={
            "packages": {"type": "list", "elements": "str", "default": []},
            "sysctl": {"type": "list", "elements": "str", "default": []},
            "paths": {"type": "list", "elements": "path", "default": []},
            "files": {"type": "list", "elements": "path", "default": []},
            "directories": {"type": "list", "elements": "path", "default": []},
            "users": {"type": "list", "elements": "str", "default": []},
            "units": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    installed = installed_packages(module, module.params["packages"])
    sysctl = {}
    for name in module.params["sysctl"]:
        path = os.path.join("/proc/sys", *name.split("."))
        sysctl[name] = {"exists": os.path.exists(path), "writeable": os.access(path, os.W_OK)}
    units = {}
    for unit in module.params["units"]:
        unit_active, unit_enabled = unit_state(module, unit)
        units[unit] = {"active": unit_active, "enabled": unit_enabled}
    module.exit_json(
        changed=False,
        missing_packages=[package for package in module.params["packages"] if package not in installed],
        sysctl=sysctl,
        existing_paths=[path for path in module.params["paths"] if os.path.lexists(path)],
        files={path: file_state(module, path) for path in module.params["files"]},
        directories={path: directory_state(module, path) for path in module.params["directories"]},
        users={name: user_groups(name) for name in module.params["users"]},
        units=units,
    )


if __name__ == "__main__":
    main()
