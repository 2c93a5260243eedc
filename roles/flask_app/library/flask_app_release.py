#!/usr/bin/python
# -*- coding: utf-8 -*-
"""The release transaction on a backend: read its state, switch, verify, revert, roll back."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: flask_app_release
short_description: Switch a backend to a release, verify it, and revert on failure
description:
  - Owns the release transaction of the flask_app role on one backend. The state lives on disk
    (C(releases/<id>), the C(current) and C(previous) links, the staged and live settings and unit)
    and in systemd; the module reads it, decides whether the host needs a switch and carries the
    switch out.
  - A switch keeps the replaced release as C(previous), points C(current) at the release atomically,
    puts the staged files in force keeping the copies they replace, reloads systemd, restarts the
    service and waits until its health endpoint answers. If it does not, the release, the files and
    the running service go back to what was serving, probed where it listened, and the module fails
    with a message that says what happened and what was reverted.
  - A host needs a switch when C(current) is not the release, a file marked I(restart) differs from
    its staged copy, the service is not running, it started before C(current) or its unit file last
    changed (a switch a stopped run left half done), or it does not listen at I(bind).
options:
  action:
    description:
      - C(inspect) reads the state and decides, changing nothing.
      - C(switch) switches when the host needs it, and does nothing otherwise.
    type: str
    choices: [inspect, switch]
    default: inspect
  prefix:
    description: Installation root holding releases/<id>/ and the current and previous links.
    type: path
    required: true
  service:
    description: The systemd unit's name, without .service.
    type: str
    required: true
  user:
    description: The account the service runs as; its listening TCP sockets are where the service answers.
    type: str
    required: true
  host:
    description: The host's name in messages.
    type: str
    required: true
  release:
    description:
      - The release to switch to. With I(rollback), empty means the release C(previous) points at;
        to inspect, the release C(current) points at.
    type: str
    default: ""
  rollback:
    description:
      - Go back to an installed release (I(release), or C(previous)); refused, before anything changes,
        when it is not installed. The files in force stay: I(files) are not put in force.
    type: bool
    default: false
  bind:
    description: The address and port the service should listen on.
    type: dict
    required: true
    suboptions:
      address:
        description: An IP address, IPv6 with or without brackets; C(0.0.0.0) and C(::) are every address.
        type: str
        required: true
      port:
        description: The TCP port.
        type: int
        required: true
  other_ports:
    description: Ports the service listens on besides the app's (its metrics listener), left out of RV(listening).
    type: list
    elements: int
    default: []
  files:
    description: Files a switch puts in force from a staged copy, keeping the copy it replaces.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: What the file is, in messages (C(settings)).
        type: str
        required: true
      live:
        description: The file in force.
        type: path
        required: true
      staged:
        description: The copy a deploy staged.
        type: path
        required: true
      previous:
        description: Where the copy it replaces is kept.
        type: path
        required: true
      group:
        description: Group owning the file (its owner is root).
        type: str
        required: true
      mode:
        description: Permissions as an octal string.
        type: str
        required: true
      checksum:
        description:
          - SHA-1 of the staged copy as this run renders it; the staged file's own when empty.
            Lets a dry run, which wrote no staged copy, decide as a real run would.
        type: str
        default: ""
      restart:
        description: A change of this file needs a restart (the unit); otherwise a reload applies it.
        type: bool
        default: false
  health:
    description: How the service is verified after its restart.
    type: dict
    required: true
    suboptions:
      path:
        description: Path requested on the host.
        type: str
        required: true
      status:
        description: HTTP status of a healthy answer.
        type: int
        default: 200
      release_key:
        description: Key of the JSON answer holding the release id it serves; empty to check the status only.
        type: str
        default: ""
      timeout:
        description: Seconds to wait for a healthy answer.
        type: int
        default: 60
"""

RETURN = r"""
changed:
  description: Whether the host was switched (or, in check mode, would be).
  type: bool
  returned: always
release_from:
  description: The release C(current) pointed at before; empty on a first deploy.
  type: str
  returned: always
release_to:
  description: The release switched (or to switch) to.
  type: str
  returned: always
rollback:
  description: The I(rollback) option, as given.
  type: bool
  returned: always
switch_needed:
  description: Whether the host needs a switch to serve I(release) as wanted.
  type: bool
  returned: always
switch_reasons:
  description: Why, one line each; empty when no switch is needed.
  type: list
  elements: str
  returned: always
files_out_of_date:
  description: Names of I(files) whose copy in force differs from the staged one.
  type: list
  elements: str
  returned: always
outcome:
  description: >-
    C(unchanged) (no switch needed), C(would switch) (check mode), C(switched), C(reverted) (the
    release did not become healthy and what was serving is back), or C(failed) (nothing to revert to,
    or the revert did not answer either).
  type: str
  returned: always
msg:
  description: What happened, in a sentence; on failure what failed and what was reverted.
  type: str
  returned: always
journal:
  description: The command that shows the service's logs.
  type: str
  returned: always
current_release:
  description: The release C(current) points at when the module ends; empty when the link is missing.
  type: str
  returned: always
previous_release:
  description: The release C(previous) points at when the module ends; empty when the link is missing.
  type: str
  returned: always
releases:
  description: Release directories, newest first, each with C(id), C(mtime) and C(installed) (its .installed marker exists).
  type: list
  elements: dict
  returned: always
installed_releases:
  description: Ids of the releases that finished installing, newest first.
  type: list
  elements: str
  returned: always
service_state:
  description: The unit's ActiveState before any switch (active, inactive, failed...).
  type: str
  returned: always
changed_since_start:
  description: The C(current) link or unit file, if changed after the running service started, one line each.
  type: list
  elements: str
  returned: always
listening:
  description: The service user's listening sockets before any switch, as C(address) and C(port), by port.
  type: list
  elements: dict
  returned: always
steps:
  description: >-
    Seconds each step of a switch took: C(restart) (the old workers finish their requests, the new ones
    are ready) and C(health) (until the health check passed); empty when nothing was switched, and
    C(health) missing when the check did not pass.
  type: dict
  returned: always
"""

import hashlib
import http.client
import ipaddress
import json
import os
import pwd
import shutil
import struct
import tempfile
import time
import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule

INSTALLED_MARKER = ".installed"


class SwitchError(Exception):
    """A step of the switch failed; the message says which."""


class System:
    """systemd, the HTTP probe and the clock: the seam unit tests replace."""

    def __init__(self, module):
        self.module = module

    def systemctl(self, *args):
        systemctl = self.module.get_bin_path("systemctl", required=True)
        rc, out, err = self.module.run_command([systemctl, *args])
        if rc != 0:
            raise SwitchError(f"systemctl {' '.join(args)} failed: {(err or out).strip()}")
        return out

    def unit(self, service):
        """ActiveState, main process start (monotonic µs) and unit file path; empty when systemd does not know it."""
        systemctl = self.module.get_bin_path("systemctl")
        if systemctl is None:
            return {}
        properties = "ActiveState,ExecMainStartTimestampMonotonic,FragmentPath"
        rc, out, _ = self.module.run_command([systemctl, "show", "--property=" + properties, service + ".service"])
        return dict(line.partition("=")[::2] for line in out.splitlines()) if rc == 0 else {}

    def get(self, url, timeout):
        """(status, body) of a GET; raises OSError when nothing answers."""
        try:
            with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - the host's own service
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def wall_clock(self):
        return time.time()

    def monotonic(self):
        return time.monotonic()

    def sleep(self, seconds):
        time.sleep(seconds)

    def listening(self, user):
        return listening_sockets(user)


# -- reading the state -------------------------------------------------------

def link_target_id(path):
    try:
        return os.path.basename(os.readlink(path).rstrip("/"))
    except OSError:
        return ""


def releases(releases_dir):
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


def changed_since_start(system, unit, current_link):
    """The current link and unit file, if changed after the running main process started.

    systemd gives the start on the monotonic clock, which no clock step moves;
    it is turned into the wall-clock time that file times use. The change time
    (ctime) is compared: a copy of the unit that keeps the staged file's
    modification time, or a rename, still sets it.
    """
    started_monotonic = int(unit.get("ExecMainStartTimestampMonotonic") or 0)
    if unit.get("ActiveState") != "active" or not started_monotonic:
        return []
    started_at = system.wall_clock() - (system.monotonic() - started_monotonic / 1e6)
    changed = []
    for path in (current_link, unit.get("FragmentPath", "")):
        try:
            if path and os.lstat(path).st_ctime > started_at:
                changed.append(f"{path} changed after the service started")
        except OSError:
            continue
    return changed


def proc_net_address(hex_address):
    """An address of /proc/net/tcp{,6}: 32-bit words, each printed in the host's byte order."""
    words = [int(hex_address[i : i + 8], 16) for i in range(0, len(hex_address), 8)]
    return ipaddress.ip_address(b"".join(struct.pack("=I", word) for word in words))


def listening_sockets(user, tables=("/proc/net/tcp", "/proc/net/tcp6")):
    """(address, port) of each TCP socket listening and owned by `user`, sorted by port.

    Read from /proc/net/tcp{,6}, which any process may read: a process's own
    file descriptors would need ptrace rights, which a container's root may
    lack. The service is the only thing that runs as its user.
    """
    try:
        uid = str(pwd.getpwnam(user).pw_uid)
    except KeyError:
        return []
    found = set()
    for table in tables:
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
                found.add((proc_net_address(address), int(port, 16)))
    return sorted(found, key=lambda socket: (socket[1], socket[0].version, str(socket[0])))


def bind_ip(address):
    return ipaddress.ip_address(address.strip("[]"))


def probe_host(address):
    """Where the host asks its own service: the address it binds to, loopback for a wildcard, IPv6 in brackets."""
    ip = ipaddress.ip_address(str(address).strip("[]"))
    if ip.is_unspecified:
        ip = ipaddress.ip_address("::1" if ip.version == 6 else "127.0.0.1")
    return f"[{ip}]" if ip.version == 6 else str(ip)


def sha1(path):
    try:
        with open(path, "rb") as handle:
            return hashlib.sha1(handle.read()).hexdigest()  # noqa: S324 - what the copy module reports
    except (FileNotFoundError, IsADirectoryError):
        return ""


class Release:
    """One run of the module on one host."""

    def __init__(self, params, system):
        self.params = params
        self.system = system
        self.prefix = params["prefix"]
        self.service = params["service"]
        self.host = params["host"]
        self.current_link = os.path.join(self.prefix, "current")
        self.previous_link = os.path.join(self.prefix, "previous")
        self.journal = f"journalctl -u {self.service}"
        self.unit = system.unit(self.service)
        self.current = link_target_id(self.current_link)
        self.previous = link_target_id(self.previous_link)
        self.releases = releases(os.path.join(self.prefix, "releases"))
        self.installed = [release["id"] for release in self.releases if release["installed"]]
        # Where the app answers: not the service's other listeners (the metrics'), which neither drain nor
        # answer health checks.
        self.sockets = [socket for socket in system.listening(params["user"])
                        if socket[1] not in (params.get("other_ports") or [])]
        self.service_state = self.unit.get("ActiveState") or "inactive"
        self.changed_since_start = changed_since_start(system, self.unit, self.current_link)
        # A rollback keeps the files in force: a failed rollout may have staged others.
        self.files = [] if params["rollback"] else params["files"]
        self.target = self._target()
        # Seconds each step of a switch took on the host, for whoever times a rollout (bench/run --rollout).
        self.steps = {}
        # What the switch kept a copy of, and what it changed: a revert puts back what is in both.
        self.kept, self.applied = [], []

    def _target(self):
        if not self.params["rollback"]:
            # Reading the state alone, the release in place is the one to decide on.
            if not self.params["release"] and self.params["action"] == "switch":
                raise ValueError("release is required to switch, unless rollback is true")
            return self.params["release"] or self.current
        wanted = self.params["release"]
        target = wanted or self.previous
        if not target:
            raise ValueError(f"{self.host} has no previous release to roll back to (installed: see `make releases`)")
        if target not in self.installed:
            if wanted:
                raise ValueError(f"flask_app_rollback_release={wanted} is not installed on {self.host}"
                                 f" (installed: see `make releases`)")
            raise ValueError(f"the previous release {target} is not installed on {self.host}"
                             f" (installed: see `make releases`)")
        return target

    # -- the decision --

    def staged_checksum(self, entry):
        return entry["checksum"] or sha1(entry["staged"])

    def out_of_date(self):
        return [entry for entry in self.params["files"] if self.staged_checksum(entry) != sha1(entry["live"])]

    def reasons(self):
        reasons = []
        if self.current != self.target:
            reasons.append(f"release {self.target} is not current ({self.current or 'none'} is)")
        reasons += [f"its {entry['name']} changed" for entry in self.out_of_date()
                    if entry["restart"] and entry in self.files]
        if self.service_state != "active":
            reasons.append(f"the service is {self.service_state}")
        reasons += self.changed_since_start
        bind = self.params["bind"]
        if self.service_state == "active" and (bind_ip(bind["address"]), bind["port"]) not in self.sockets:
            where = ", ".join(f"{address}:{port}" for address, port in self.sockets) or "nowhere"
            reasons.append(f"it listens at {where}, not at {bind['address']}:{bind['port']}")
        return reasons

    def plan(self, reasons):
        if not reasons:
            return f"{self.host} serves release {self.target} as wanted"
        if self.current != self.target:
            return f"would switch {self.host} from {self.current or 'nothing'} to {self.target}"
        return (f"would restart {self.host} on release {self.target} out of rotation ("
                + "; ".join(reasons) + ")")

    def result(self, **values):
        return {
            "release_from": self.current,
            "release_to": self.target,
            "rollback": self.params["rollback"],
            "files_out_of_date": [entry["name"] for entry in self.out_of_date()],
            "journal": self.journal,
            "current_release": link_target_id(self.current_link),
            "previous_release": link_target_id(self.previous_link),
            "releases": releases(os.path.join(self.prefix, "releases")),
            "installed_releases": self.installed,
            "service_state": self.service_state,
            "changed_since_start": self.changed_since_start,
            "listening": [{"address": str(address), "port": port} for address, port in self.sockets],
            "steps": dict(self.steps),
            **values,
        }

    # -- the transaction --

    def run(self, check_mode):
        reasons = self.reasons()
        decided = {"switch_needed": bool(reasons), "switch_reasons": reasons}
        if not reasons:
            return self.result(changed=False, outcome="unchanged", msg=self.plan(reasons), **decided)
        if self.params["action"] == "inspect" or check_mode:
            return self.result(changed=self.params["action"] == "switch", outcome="would switch",
                               msg=self.plan(reasons), **decided)
        try:
            self.switch()
            return self.result(changed=True, outcome="switched",
                               msg=f"{self.host} switched from {self.current or 'nothing'} to {self.target}", **decided)
        except (SwitchError, OSError) as error:
            outcome, what = self.revert()
            msg = (f"release {self.target} did not become healthy on {self.host} ({error}); {what}."
                   f" Logs: {self.journal}")
            return self.result(changed=True, failed=True, outcome=outcome, msg=msg, **decided)

    def switch(self):
        """Everything up to a healthy answer; a SwitchError leaves the rest to revert()."""
        if self.current not in ("", self.target):
            point_link(self.previous_link, self.release_dir(self.current))
        point_link(self.current_link, self.release_dir(self.target))
        for entry in self.files:
            live_checksum = sha1(entry["live"])
            # A first deploy has nothing to keep, and a half-done one may lack a file.
            if self.current and live_checksum:
                put_file(entry["live"], entry["previous"], entry)
                self.kept.append(entry)
            # Written even when the content is the same, for its owner and mode.
            put_file(entry["staged"], entry["live"], entry)
            if sha1(entry["staged"]) != live_checksum:
                self.applied.append(entry)
        self.system.systemctl("daemon-reload")
        self.system.systemctl("enable", self.service + ".service")
        # A restart, not a reload: Gunicorn resolved the venv and working
        # directory of the old release when it started, and a HUP keeps them.
        # It returns once the old workers have finished their requests and the
        # new ones are ready (Type=notify).
        started = self.system.monotonic()
        self.system.systemctl("restart", self.service + ".service")
        restarted = self.system.monotonic()
        self.steps["restart"] = round(restarted - started, 3)
        bind = self.params["bind"]
        self.verify(probe_host(bind["address"]), bind["port"], self.target)
        self.steps["health"] = round(self.system.monotonic() - restarted, 3)

    def revert(self):
        """(outcome, what was done) after a failed switch: what was serving comes back, where it listened."""
        reverted = [entry for entry in self.applied if entry in self.kept]
        what = " and ".join(entry["name"] for entry in reverted)
        if self.current in ("", self.target) and not reverted:
            if self.current:
                return "failed", ("it was restarted with the release, settings and unit it already had (it was stopped"
                                  " or not listening), so there is nothing to revert to")
            return "failed", "no earlier release to revert to"
        for entry in reverted:
            put_file(entry["previous"], entry["live"], entry)
        back_to = self.current or self.target
        point_link(self.current_link, self.release_dir(back_to))
        if self.previous:
            point_link(self.previous_link, self.release_dir(self.previous))
        if back_to != self.target:
            done = f"reverted to release {back_to}" + (f" and the {what} it ran with" if what else "")
        else:
            done = f"put back the {what} it ran with on release {back_to}"
        # With its old settings back, the release listens where it did before the switch.
        bind = self.params["bind"]
        address, port = bind["address"], bind["port"]
        if any(not entry["restart"] for entry in reverted) and self.sockets:
            address, port = str(self.sockets[0][0]), self.sockets[0][1]
        try:
            self.system.systemctl("daemon-reload")
            self.system.systemctl("restart", self.service + ".service")
            self.verify(probe_host(address), port, back_to)
        except (SwitchError, OSError) as error:
            return "failed", f"{done}, which did not answer either ({error})"
        return "reverted", done

    def release_dir(self, release):
        return os.path.join(self.prefix, "releases", release)

    def verify(self, host, port, release):
        """Poll the health endpoint until it answers as healthy for `release`, or the timeout."""
        health = self.params["health"]
        url = f"http://{host}:{port}{health['path']}"
        deadline = self.system.monotonic() + health["timeout"]
        last = "no answer"
        while True:
            try:
                status, body = self.system.get(url, timeout=5)
                last = healthy(status, body, health, release)
                if last is None:
                    return
            except (OSError, http.client.HTTPException) as error:
                last = f"{url}: {getattr(error, 'reason', error)}"
            if self.system.monotonic() >= deadline:
                raise SwitchError(f"no healthy answer within {health['timeout']} s, last: {last}")
            self.system.sleep(1)


def healthy(status, body, health, release):
    """None when the answer is healthy for `release`, else what is wrong with it."""
    if status != health["status"]:
        return f"status {status}, wanted {health['status']}"
    key = health["release_key"]
    if not key:
        return None
    try:
        reported = json.loads(body).get(key)
    except (ValueError, AttributeError):
        return f"the answer is not a JSON object with {key!r}"
    if reported != release:
        return f"{key} {reported!r}, wanted {release!r}"
    return None


def point_link(link, target):
    """Point `link` at `target`, replacing it with rename(2): atomic."""
    temporary = f"{link}.{os.getpid()}.new"
    try:
        os.unlink(temporary)
    except FileNotFoundError:
        pass
    os.symlink(target, temporary)
    os.replace(temporary, link)


def put_file(source, destination, entry):
    """Copy `source` over `destination` with rename(2), as root:<group> and the entry's mode."""
    directory = os.path.dirname(destination)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(destination)}.")
    try:
        with os.fdopen(handle, "wb") as copy, open(source, "rb") as original:
            shutil.copyfileobj(original, copy)
        os.chmod(temporary, int(entry["mode"], 8))
        if os.geteuid() == 0:
            shutil.chown(temporary, "root", entry["group"])
        os.replace(temporary, destination)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


ARGUMENT_SPEC = {
    "action": {"type": "str", "choices": ["inspect", "switch"], "default": "inspect"},
    "prefix": {"type": "path", "required": True},
    "service": {"type": "str", "required": True},
    "user": {"type": "str", "required": True},
    "host": {"type": "str", "required": True},
    "release": {"type": "str", "default": ""},
    "rollback": {"type": "bool", "default": False},
    "bind": {
        "type": "dict",
        "required": True,
        "options": {"address": {"type": "str", "required": True}, "port": {"type": "int", "required": True}},
    },
    "other_ports": {"type": "list", "elements": "int", "default": []},
    "files": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": {
            "name": {"type": "str", "required": True},
            "live": {"type": "path", "required": True},
            "staged": {"type": "path", "required": True},
            "previous": {"type": "path", "required": True},
            "group": {"type": "str", "required": True},
            "mode": {"type": "str", "required": True},
            "checksum": {"type": "str", "default": ""},
            "restart": {"type": "bool", "default": False},
        },
    },
    "health": {
        "type": "dict",
        "required": True,
        "options": {
            "path": {"type": "str", "required": True},
            "status": {"type": "int", "default": 200},
            "release_key": {"type": "str", "default": "", "no_log": False},
            "timeout": {"type": "int", "default": 60},
        },
    },
}


def main(system_class=System):
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        release = Release(module.params, system_class(module))
    except ValueError as error:
        module.fail_json(msg=str(error))
    result = release.run(module.check_mode)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
