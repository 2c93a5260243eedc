#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Read what a deploy needs to know about a backend, in one round trip."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: flask_app_host_state
short_description: Report a backend's releases, service state and missing packages
description:
  - Reads, without changing anything, what the flask_app role decides on.
    The releases installed under I(prefix) (newest first, and whether each
    finished installing), the releases the C(current) and C(previous) links
    point at, the service's systemd ActiveState, what changed after its main
    process started, the TCP ports its account listens on, which of I(packages) dpkg does not list as installed, the
    checksums, owners and modes of I(files), and how the service account and I(directories)
    differ from what the role wants.
  - One module run instead of a stat, find, systemd and apt task each. On a
    re-run that changes nothing, those round trips are most of the time a
    deploy spends per host.
options:
  prefix:
    description: Installation root holding releases/<id>/ and the current and previous links.
    type: path
    required: true
  service:
    description: The systemd unit's name, without .service.
    type: str
    required: true
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
        RV(layout_differences); the TCP sockets its user listens on, in RV(listening).
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
  bind:
    description: The address and port the service should listen on; whether it does is returned in RV(listening_at_bind).
    type: dict
    suboptions:
      address:
        description: An IP address, IPv6 with or without brackets; C(0.0.0.0) and C(::) are every address.
        type: str
        required: true
      port:
        description: The TCP port.
        type: int
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
current_release:
  description: Id of the release C(current) points at; empty when the link is missing.
  type: str
  returned: always
previous_release:
  description: Id of the release C(previous) points at; empty when the link is missing.
  type: str
  returned: always
releases:
  description: Release directories, newest first, each with C(id), C(mtime) and C(installed) (its .installed marker exists).
  type: list
  elements: dict
  returned: always
service_state:
  description: The unit's ActiveState (active, inactive, failed...); inactive when systemd does not know it.
  type: str
  returned: always
changed_since_start:
  description:
    - What a running service was not started with, one line each ("/opt/app/current changed after the
      service started"): the C(current) link or the unit's file, changed after the unit's main process
      started. A deploy stopped between putting them in place and its restart leaves this.
    - Compared by status change time (ctime, which a rename or a copy that keeps the source's
      modification time still sets), with the start time read from systemd's monotonic clock. Empty
      when the service is not running.
  type: list
  elements: str
  returned: always
missing_packages:
  description: The requested packages dpkg does not list as installed, in the order requested.
  type: list
  elements: str
  returned: always
listening:
  description: >-
    Each listening socket of the user of I(account), as C(address) (an IP address, no brackets) and C(port),
    by port: where the running service answers. Empty when it is not running, or without I(account).
  type: list
  elements: dict
  returned: always
listening_at_bind:
  description: >-
    Whether a socket of the user of I(account) listens at exactly I(bind)'s address and port: a running
    service that would have to move to another address or port to serve as wanted does not. False without
    I(account) or I(bind).
  type: bool
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
import ipaddress
import os
import pwd
import stat
import struct
import time

from ansible.module_utils.basic import AnsibleModule

INSTALLED_MARKER = ".installed"


def _link_target_id(path):
    try:
        return os.path.basename(os.readlink(path).rstrip("/"))
    except OSError:
        return ""


def _releases(releases_dir):
    try:
        entries = list(os.scandir(releases_dir))
    except FileNotFoundError:
        return []
    found = [
        {
            "id": entry.name,
            "mtime": entry.stat(follow_symlinks=False).st_mtime,
            "installed": os.path.exists(os.path.join(entry.path, INSTALLED_MARKER)),
        }
        for entry in entries
        if entry.is_dir(follow_symlinks=False)
    ]
    return sorted(found, key=lambda release: release["mtime"], reverse=True)


def _service(module, service):
    """The unit's properties the role decides on; empty when systemd does not know it."""
    systemctl = module.get_bin_path("systemctl")
    if systemctl is None:
        return {}
    properties = "ActiveState,ExecMainStartTimestampMonotonic,FragmentPath"
    rc, out, _ = module.run_command([systemctl, "show", "--property=" + properties, service + ".service"])
    return dict(line.partition("=")[::2] for line in out.splitlines()) if rc == 0 else {}


def _changed_since_start(unit, current_link):
    """The current link and unit file, if changed after the running main process started.

    systemd gives the start on the monotonic clock, which no clock step moves;
    it is turned into the wall-clock time that file times use. The change time
    (ctime) is compared: the role's copy of the unit keeps the staged file's
    modification time, but no copy or rename can keep the old change time.
    """
    started_monotonic = int(unit.get("ExecMainStartTimestampMonotonic") or 0)
    if unit.get("ActiveState") != "active" or not started_monotonic:
        return []
    started_at = time.time() - (time.monotonic() - started_monotonic / 1e6)
    changed = []
    for path in (current_link, unit.get("FragmentPath", "")):
        try:
            if path and os.lstat(path).st_ctime > started_at:
                changed.append(f"{path} changed after the service started")
        except OSError:
            continue
    return changed


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


def _proc_net_address(hex_address):
    """An address of /proc/net/tcp{,6}: 32-bit words, each printed in the host's byte order."""
    words = [int(hex_address[i : i + 8], 16) for i in range(0, len(hex_address), 8)]
    return ipaddress.ip_address(b"".join(struct.pack("=I", word) for word in words))


def _listening_sockets(user):
    """(address, port) of each TCP socket listening and owned by `user` (IPv4 and IPv6).

    Read from /proc/net/tcp{,6}, which any process may read: a process's own
    file descriptors would need ptrace rights, which a container's root may
    lack. The service is the only thing that runs as its user.
    """
    try:
        uid = str(pwd.getpwnam(user).pw_uid)
    except KeyError:
        return set()
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as sockets:
                rows = sockets.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            # local_address is HEXADDR:HEXPORT; st 0A is LISTEN; then the owner's uid.
            if len(fields) > 7 and fields[3] == "0A" and fields[7] == uid:
                address, port = fields[1].rsplit(":", 1)
                found.add((_proc_net_address(address), int(port, 16)))
    return found


def _socket_order(socket):
    address, port = socket
    return (port, address.version, str(address))


def _listening_at(sockets, bind):
    """Whether one of the sockets is bound exactly to bind's address (brackets allowed) and port."""
    try:
        wanted = ipaddress.ip_address(bind["address"].strip("[]"))
    except ValueError:
        return False
    return (wanted, bind["port"]) in sockets


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
            "prefix": {"type": "path", "required": True},
            "service": {"type": "str", "required": True},
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
            "bind": {
                "type": "dict",
                "options": {
                    "address": {"type": "str", "required": True},
                    "port": {"type": "int", "required": True},
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
    prefix, account = module.params["prefix"], module.params["account"]
    unit = _service(module, module.params["service"])
    sockets = _listening_sockets(account["user"]) if account else set()
    module.exit_json(
        changed=False,
        current_release=_link_target_id(os.path.join(prefix, "current")),
        previous_release=_link_target_id(os.path.join(prefix, "previous")),
        releases=_releases(os.path.join(prefix, "releases")),
        service_state=unit.get("ActiveState") or "inactive",
        changed_since_start=_changed_since_start(unit, os.path.join(prefix, "current")),
        missing_packages=_missing_packages(module, module.params["packages"]),
        listening=[{"address": str(address), "port": port} for address, port in sorted(sockets, key=_socket_order)],
        listening_at_bind=bool(module.params["bind"]) and _listening_at(sockets, module.params["bind"]),
        checksums=_checksums(module, module.params["files"]),
        file_attributes=_file_attributes(module.params["files"]),
        layout_differences=(_account_differences(account) if account else [])
        + _directory_differences(module.params["directories"]),
    )


if __name__ == "__main__":
    main()
