#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Read what staging skips when a backend already has it, in one round trip."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: flask_app_host_state
short_description: Report a backend's missing packages, file checksums and layout differences
description:
  - Reads, without changing anything, what the flask_app role's staging skips
    when the host has it: which of I(packages) dpkg does not list as installed,
    the checksums, owners and modes of I(files), and how the service account
    and I(directories) differ from what the role wants.
  - One module run instead of the apt, group, user, file and template tasks
    it lets a re-run skip. On a re-run that changes nothing, those round trips
    are most of the time a deploy spends per host (roles/flask_app/README.md
    has the measurement).
options:
  packages:
    description: Debian packages the service needs; those not installed are returned in RV(missing_packages).
    type: list
    elements: str
    default: []
  files:
    description: Files whose SHA-1 checksums are returned in RV(checksums), and owners and modes in RV(file_attributes).
    type: list
    elements: path
    default: []
  account:
    description:
      - The account the service runs as, as the role creates it. Differences are returned in
        RV(layout_differences).
    type: dict
    suboptions:
      user:
        description: The user's name.
        type: str
        required: true
      group:
        description: Its group, which must exist and be the user's primary group.
        type: str
        required: true
      home:
        description: Its home directory.
        type: path
        required: true
      shell:
        description: Its login shell.
        type: path
        required: true
      password:
        description: Its password field in C(/etc/shadow), such as C(!) for a locked password.
        type: str
        required: true
  directories:
    description: Directories as the role creates them; a symbolic link to a directory counts as the directory, as for the file module.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The directory.
        type: path
        required: true
      owner:
        description: Owning user's name.
        type: str
        required: true
      group:
        description: Owning group's name.
        type: str
        required: true
      mode:
        description: Permissions as an octal string, such as C("0755").
        type: str
        required: true
"""

RETURN = r"""
missing_packages:
  description: The requested packages dpkg does not list as installed, in the order requested.
  type: list
  elements: str
  returned: always
checksums:
  description: >-
    The SHA-1 checksum of each of I(files), as the copy and template modules report it; empty for a
    file that does not exist.
  type: dict
  returned: always
file_attributes:
  description: >-
    The C(owner), C(group) and C(mode) (an octal string such as C("0640")) of each of I(files), as
    names where the system has them; an empty dict for a file that does not exist.
  type: dict
  returned: always
layout_differences:
  description: >-
    How the account and the directories differ from I(account) and I(directories), one line each
    ("directory /opt/app: mode 0700, wanted 0755"); empty when they are as wanted.
  type: list
  elements: str
  returned: always
"""

import grp
import os
import pwd
import stat

from ansible.module_utils.basic import AnsibleModule


def _missing_packages(module, packages):
    if not packages:
        return []
    dpkg_query = module.get_bin_path("dpkg-query")
    if dpkg_query is None:
        return list(packages)
    # Exits 1 when a package is unknown to dpkg; the ones it knows are still listed.
    _, out, _ = module.run_command([dpkg_query, "--show", "--showformat=${Package}\t${Status}\n", *packages])
    installed = set()
    for line in out.splitlines():
        name, _, status = line.partition("\t")
        if status.strip() == "install ok installed":
            installed.add(name.split(":")[0])
    return [package for package in packages if package not in installed]


def _checksums(module, paths):
    return {path: module.sha1(path) if os.path.isfile(path) else "" for path in paths}


def _ownership(info):
    """Owner and group names (numbers when the system has no name) and the octal mode of a stat result."""
    try:
        owner = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        owner = str(info.st_uid)
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    return {"owner": owner, "group": group, "mode": "%04o" % stat.S_IMODE(info.st_mode)}


def _file_attributes(paths):
    attributes = {}
    for path in paths:
        try:
            attributes[path] = _ownership(os.stat(path)) if os.path.isfile(path) else {}
        except OSError:
            attributes[path] = {}
    return attributes


def _account_differences(account):
    user, group = account["user"], account["group"]
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        return [f"group {group}: missing"]
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return [f"user {user}: missing"]
    differences = [
        f"user {user}: {what} {have}, wanted {want}"
        for what, have, want in (
            ("primary group id", entry.pw_gid, gid),
            ("home", entry.pw_dir, account["home"]),
            ("shell", entry.pw_shell, account["shell"]),
        )
        if have != want
    ]
    try:
        with open("/etc/shadow", encoding="utf-8") as shadow:
            passwords = dict(line.split(":")[:2] for line in shadow if line.count(":") >= 1)
    except OSError as error:
        return differences + [f"user {user}: password not readable ({error.strerror})"]
    if passwords.get(user) != account["password"]:
        differences.append(f"user {user}: password field not as wanted")
    return differences


def _directory_differences(directories):
    differences = []
    for wanted in directories:
        path = wanted["path"]
        try:
            info = os.stat(path)
        except FileNotFoundError:
            differences.append(f"directory {path}: missing")
            continue
        if not stat.S_ISDIR(info.st_mode):
            differences.append(f"directory {path}: not a directory")
            continue
        have = _ownership(info)
        for what, want in (("owner", wanted["owner"]), ("group", wanted["group"]),
                           ("mode", "%04o" % int(str(wanted["mode"]), 8))):
            if have[what] != want:
                differences.append(f"directory {path}: {what} {have[what]}, wanted {want}")
    return differences


def main():
    module = AnsibleModule(
        argument_spec={
            "packages": {"type": "list", "elements": "str", "default": []},
            "files": {"type": "list", "elements": "path", "default": []},
            "account": {
                "type": "dict",
                "options": {
                    "user": {"type": "str", "required": True},
                    "group": {"type": "str", "required": True},
                    "home": {"type": "path", "required": True},
                    "shell": {"type": "path", "required": True},
                    # A hash or a lock marker, not a password; no_log would mask every "!" in the output.
                    "password": {"type": "str", "required": True, "no_log": False},
                },
            },
            "directories": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "path": {"type": "path", "required": True},
                    "owner": {"type": "str", "required": True},
                    "group": {"type": "str", "required": True},
                    "mode": {"type": "str", "required": True},
                },
            },
        },
        supports_check_mode=True,
    )
    account = module.params["account"]
    module.exit_json(
        changed=False,
        missing_packages=_missing_packages(module, module.params["packages"]),
        checksums=_checksums(module, module.params["files"]),
        file_attributes=_file_attributes(module.params["files"]),
        layout_differences=(_account_differences(account) if account else [])
        + _directory_differences(module.params["directories"]),
    )


if __name__ == "__main__":
    main()
