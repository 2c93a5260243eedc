#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Own a load balancer's rotation: which backends of the upstream take traffic."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nginx_lb_rotation
short_description: Drain, undrain and report the backends of an nginx upstream
description:
  - Keeps the rotation state of one site in a JSON file (I(state_dir)/I(site).json): the upstream's peers, as
    the inventory gives them, and the backends a rollout took out of rotation. The upstream's C(server) lines
    are written from that state to I(conf_dir)/I(site).upstream, which the site's C(upstream {}) block includes.
    Nobody reads the rotation back out of nginx's configuration.
  - Every change is checked with C(nginx -t) (through I(checker), on a copy of /etc/nginx with the new file in
    place) before the file is replaced, then nginx is reloaded, never restarted.
  - A change that would leave no backend taking traffic (every other one drained, down or backup) is refused.
  - Supports check mode (reports what would change, changes nothing) and diff mode (the upstream file).
options:
  site:
    description: Name of the site, as the nginx_lb role names its files (nginx_lb_site_name).
    type: str
    required: true
  state:
    description:
      - C(rendered) stores I(peers) as the upstream and puts every backend back in rotation (the role's full run).
      - C(drained) takes I(backends) out of rotation (see I(drained_by)); C(in_rotation) puts them back.
      - C(query) changes nothing and reports the state.
      - Where the site has no state yet (a load balancer not configured yet), every state but C(rendered) does
        nothing and returns RV(configured)=false.
    type: str
    choices: [rendered, drained, in_rotation, query]
    default: query
  backends:
    description: Inventory names of the backends to drain or put back. Names not in the upstream are ignored.
    type: list
    elements: str
    default: []
  batch:
    description:
      - With C(drained), backends going out of rotation together with I(backends) (a rollout's batch), each in
        its own call. The last-backend check counts them as out already.
    type: list
    elements: str
    default: []
  drained_by:
    description:
      - With C(drained), what keeps the backends from getting requests.
      - C(nginx) marks their servers C(down) in the upstream, and reloads nginx.
      - C(backend) records them as out of rotation (the last-backend check counts them) and leaves the upstream
        and nginx as they are, for backends that refuse new connections themselves (a rollout's: nginx passes a
        refused request to another backend). Every reload closes the clients' idle kept-alive connections, so a
        rollout drains so, and C(in_rotation) then changes nothing in nginx unless the backend's peer changed.
        A backend nginx already has C(down) stays so.
    type: str
    choices: [nginx, backend]
    default: nginx
  peers:
    description:
      - The upstream from the inventory, as the C(nginx_lb_upstream_peers) filter returns it. Required with
        C(rendered).
      - With C(in_rotation), the peers of I(backends) are taken from it (a backend switched to a new port comes
        back at that port); the others are left as stored.
    type: list
    elements: dict
  next_upstream_tries:
    description:
      - With C(rendered), the site's C(proxy_next_upstream_tries) (0 for no limit), kept in the state.
      - A drain by the backends (I(drained_by=backend)) is refused when the backends refusing connections
        together would be as many as nginx tries for one request: a request could meet only them, and get a 502.
    type: int
  next_upstream:
    description:
      - With C(rendered), the site's C(proxy_next_upstream) conditions. The state keeps whether they pass a request
        on after a connection error (C(error), without C(off)): without that a refused connection is a 502, and a
        drain by the backends is refused.
    type: list
    elements: str
  reload:
    description:
      - Reload nginx after a change, and after a change an earlier call wrote without one (RV(reload_pending)).
      - With C(false), a change is written and nginx keeps running the configuration it has until the next reload
        (the next call with a reload applies it, whatever it changes).
        C(rendered) reports a pending change as a change, and leaves the reload to the caller (the role's
        handler).
    type: bool
    default: true
  conf_dir:
    description: Directory of the site's files.
    type: path
    default: /etc/nginx/conf.d
  state_dir:
    description: Directory of the rotation state files.
    type: path
    default: /var/lib/nginx_lb
  checker:
    description: Command that checks nginx's configuration with a candidate file, called as C(checker TARGET CANDIDATE).
    type: path
    default: /usr/local/sbin/nginx-lb-validate
"""

EXAMPLES = r"""
- name: Take app1 out of rotation
  nginx_lb_rotation:
    site: orders
    state: drained
    backends: [app1]
    batch: [app1, app2]

- name: Read the rotation
  nginx_lb_rotation:
    site: orders
  register: rotation
"""

RETURN = r"""
configured:
  description: Whether the site has a rotation state on this host; false before the role's first run.
  type: bool
  returned: always
in_rotation:
  description: Inventory names of the backends that take traffic (not drained, down or backup), in upstream order.
  type: list
  elements: str
  returned: always
drained:
  description: Inventory names of the backends taken out of rotation, by nginx or by themselves (RV(refusing)).
  type: list
  elements: str
  returned: always
refusing:
  description: Inventory names of the backends out of rotation that nginx still lists (I(drained_by=backend)).
  type: list
  elements: str
  returned: always
down:
  description: Inventory names of the backends the inventory marks down (nginx_lb_backend_down).
  type: list
  elements: str
  returned: always
backup:
  description: Inventory names of the backup backends.
  type: list
  elements: str
  returned: always
peers:
  description: The stored peers (host, address, port, endpoint, weight, max_fails, fail_timeout, backup, down), each with C(drained).
  type: list
  elements: dict
  returned: always
next_upstream_tries:
  description: The site's C(proxy_next_upstream_tries), as the role's last full run gave it (I(next_upstream_tries)).
  type: int
  returned: where the state keeps it
next_upstream_on_error:
  description: Whether the site passes a request on after a connection error (from I(next_upstream)).
  type: bool
  returned: where the state keeps it
reload_pending:
  description: Whether the upstream file holds a change nginx has not been reloaded with (see I(reload)).
  type: bool
  returned: always
upstream_file:
  description: The file the upstream's server lines are written to.
  type: str
  returned: always
"""

import fcntl
import json
import os
import re
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.nginx_lb_site_name import SITE_NAME_SHAPE, is_site_name

# What the nginx_lb_upstream_peers filter makes: a host name or IPv4 address, or an IPv6 one in brackets.
ENDPOINT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):[0-9]{1,5}\Z")
PEER_OPTIONS = {
    "host": {"type": "str", "required": True},
    "endpoint": {"type": "str", "required": True},
    "address": {"type": "str"},
    "port": {"type": "int"},
    "weight": {"type": "int", "default": 1},
    "max_fails": {"type": "int", "default": 1},
    "fail_timeout": {"type": "int", "default": 10},
    "backup": {"type": "bool", "default": False},
    "down": {"type": "bool", "default": False},
}
ARGUMENT_SPEC = {
    "site": {"type": "str", "required": True},
    "state": {"type": "str", "default": "query",
              "choices": ["rendered", "drained", "in_rotation", "query"]},
    "backends": {"type": "list", "elements": "str", "default": []},
    "batch": {"type": "list", "elements": "str", "default": []},
    "peers": {"type": "list", "elements": "dict", "options": PEER_OPTIONS},
    "next_upstream_tries": {"type": "int"},
    "next_upstream": {"type": "list", "elements": "str"},
    "reload": {"type": "bool", "default": True},
    "drained_by": {"type": "str", "choices": ["nginx", "backend"], "default": "nginx"},
    "conf_dir": {"type": "path", "default": "/etc/nginx/conf.d"},
    "state_dir": {"type": "path", "default": "/var/lib/nginx_lb"},
    "checker": {"type": "path", "default": "/usr/local/sbin/nginx-lb-validate"},
}


class Nginx:
    """The two calls to nginx: the seam unit tests replace."""

    def __init__(self, module, checker):
        self.module, self.checker = module, checker

    def check(self, target, candidate):
        """(ok, nginx's message) for the configuration with `candidate` in place of `target`."""
        rc, out, err = self.module.run_command([self.checker, target, candidate])
        return rc == 0, (err or out).strip()

    def reload(self):
        """(ok, message). A reload: new workers take the configuration while the old ones finish."""
        rc, out, err = self.module.run_command(["systemctl", "reload", "nginx"])
        return rc == 0, (err or out).strip()


class Refused(Exception):
    """A request this module will not carry out; the message says why."""


def check_request(params):
    """Refuse, before anything is read or locked, what no state could make right."""
    if not is_site_name(params["site"]):
        raise Refused(f"site must be {SITE_NAME_SHAPE}, got {params['site']!r}")
    if params["state"] == "rendered":
        if params["peers"] is None:
            raise Refused("state=rendered needs peers (the nginx_lb_upstream_peers filter's list)")
        if params["peers"] and not serving(params["peers"], set()):
            raise Refused("every backend of the upstream is down or backup: nothing would serve")
    hosts = set()
    for peer in params["peers"] or []:
        if not ENDPOINT.match(peer["endpoint"]):
            raise Refused(f"peer {peer['host']}: endpoint must be ADDRESS:PORT ([IPv6]:PORT), got {peer['endpoint']!r}")
        for key, lowest in (("weight", 1), ("max_fails", 0), ("fail_timeout", 0)):
            if peer[key] < lowest:
                raise Refused(f"peer {peer['host']}: {key} must be an integer >= {lowest}, got {peer[key]!r}")
        if peer["host"] in hosts:
            raise Refused(f"peer {peer['host']} is listed twice")
        hosts.add(peer["host"])


def serving(peers, out):
    """Hosts of `peers` that take traffic when the hosts in `out` are drained."""
    return [peer["host"] for peer in peers if not (peer["down"] or peer["backup"] or peer["host"] in out)]


# The settings a state keeps that decide what nginx does with a refused connection (a state written before
# they were kept has neither, and is not checked).
RETRY_SETTINGS = ("next_upstream_tries", "next_upstream_on_error")


def next_state(current, params):
    """The state after the request: {"peers": [...], "drained": [...], "refusing": [...]}. Raises Refused.

    `drained` backends are marked down in the upstream; `refusing` ones are out of rotation too, but nginx still
    lists them: they refuse new connections themselves."""
    action = params["state"]
    if action == "rendered":
        # The inventory's upstream, every backend back in rotation, and how nginx passes a request on.
        return {"peers": [dict(peer) for peer in params["peers"]], "drained": [], "refusing": [],
                **retry_settings(params)}
    retries = {key: current[key] for key in RETRY_SETTINGS if key in current}
    peers = [dict(peer) for peer in current["peers"]]
    known = {peer["host"] for peer in peers}
    drained = set(current["drained"]) & known
    refusing = set(current["refusing"]) & known - drained
    asked = set(params["backends"]) & known
    if action == "drained":
        if params["drained_by"] == "backend":
            refusing |= asked - drained
            check_refusals(peers, (refusing | set(params["batch"])) - drained, retries)
        else:
            drained |= asked
            refusing -= asked
        if not serving(peers, drained | refusing | set(params["batch"])):
            leaving = sorted(set(params["backends"]) | set(params["batch"]))
            raise Refused(
                f"taking {', '.join(leaving)} out of rotation would leave no backend serving (the others are drained, "
                "down or backup); refusing. Add a backend, bring one back or switch fewer at a time (rolling_serial)"
                " first.")
    elif action == "in_rotation":
        drained -= asked
        refusing -= asked
        fresh = {peer["host"]: dict(peer) for peer in params["peers"] or []}
        peers = [fresh[peer["host"]] if peer["host"] in asked and peer["host"] in fresh else peer for peer in peers]
    return {"peers": peers, "drained": [peer["host"] for peer in peers if peer["host"] in drained],
            "refusing": [peer["host"] for peer in peers if peer["host"] in refusing], **retries}


def retry_settings(params):
    """What the state keeps of how nginx passes on a request whose connection was refused."""
    settings = {}
    if params["next_upstream_tries"] is not None:
        settings["next_upstream_tries"] = params["next_upstream_tries"]
    if params["next_upstream"] is not None:
        settings["next_upstream_on_error"] = "error" in params["next_upstream"] and "off" not in params["next_upstream"]
    return settings


def check_refusals(peers, refusing, retries):
    """Refuse backends that refuse connections themselves where nginx would not pass every request on."""
    if retries.get("next_upstream_on_error") is False:
        raise Refused("nginx_lb_next_upstream does not pass a request on after an error: a backend refusing "
                      "connections during its switch would answer 502s. Add error to nginx_lb_next_upstream.")
    tries = retries.get("next_upstream_tries", 0)
    # Peers nginx sends to: a request could meet every refusing one before any other.
    refusing = [peer["host"] for peer in peers if peer["host"] in refusing and not (peer["down"] or peer["backup"])]
    if tries and len(refusing) >= tries:
        raise Refused(
            f"{', '.join(refusing)} would refuse connections at once, but nginx tries at most {tries} backends for "
            f"one request (nginx_lb_next_upstream_tries={tries}): a request could meet only them and get a 502. "
            "Switch fewer at a time (rolling_serial), or raise nginx_lb_next_upstream_tries (0: no limit).")


def render(state, state_path):
    lines = [f"# Written by nginx_lb_rotation from {state_path}: the inventory's upstream, with",
             "# the backends drained on nginx (one a rollout left out, say) marked down. Edits here are lost.",
             ]
    for peer in state["peers"]:
        flags = (" backup" if peer["backup"] else "") + \
            (" down" if peer["down"] or peer["host"] in state["drained"] else "")
        lines.append(f"server {peer['endpoint']} weight={peer['weight']} max_fails={peer['max_fails']}"
                     f" fail_timeout={peer['fail_timeout']}s{flags};")
    return "\n".join(lines) + "\n"


def report(state):
    peers = state["peers"] if state else []
    refusing = state["refusing"] if state else []
    drained = [peer["host"] for peer in peers if peer["host"] in set(state["drained"]) | set(refusing)] if state else []
    return {
        "reload_pending": bool(state and state.get("reload_pending")),
        "in_rotation": serving(peers, set(drained)),
        "drained": drained,
        "refusing": list(refusing),
        "down": [peer["host"] for peer in peers if peer["down"]],
        "backup": [peer["host"] for peer in peers if peer["backup"]],
        "peers": [dict(peer, drained=peer["host"] in drained) for peer in peers],
        **{key: state[key] for key in RETRY_SETTINGS if state and key in state},
    }


def read_text(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def read_state(path):
    text = read_text(path)
    if text is None:
        return None
    try:
        state = json.loads(text)
        if not isinstance(state.get("peers"), list) or not isinstance(state.get("drained"), list):
            raise ValueError("peers and drained must be lists")
        # A state written before backends could refuse connections themselves.
        state.setdefault("refusing", [])
    except (ValueError, AttributeError) as error:
        raise Refused(f"{path} is not a rotation state ({error}); run the nginx_lb role to write it again") from None
    return state


def write_file(module, path, text, mode=0o644):
    """Replace `path` with `text` in one rename: readers see the old file or the new one."""
    directory = os.path.dirname(path)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.")
    with os.fdopen(handle, "w", encoding="utf-8") as output:
        output.write(text)
    os.chmod(temporary, mode)
    module.atomic_move(temporary, path)


def apply(module, nginx, params):
    """Carry out the request; returns the module's result."""
    site = params["site"]
    state_path = os.path.join(params["state_dir"], f"{site}.json")
    upstream_path = os.path.join(params["conf_dir"], f"{site}.upstream")
    site_path = os.path.join(params["conf_dir"], f"{site}.conf")
    current = read_state(state_path)
    result = {"changed": False, "configured": current is not None, "upstream_file": upstream_path}
    if params["state"] == "query":
        return dict(result, **report(current))
    if current is None and params["state"] != "rendered":
        if os.path.exists(site_path):
            # A site written before the rotation had a state: draining nothing would let a rollout
            # restart a backend that still takes traffic.
            raise Refused(f"{site_path} exists but has no rotation state ({state_path}); run the nginx_lb role "
                          "(playbooks/loadbalancers.yml) on this load balancer first")
        return dict(result, **report(None))
    new = next_state(current or {"peers": [], "drained": [], "refusing": []}, params)
    before = read_text(upstream_path)
    after = render(new, state_path)
    upstream_changed = before != after
    # The running nginx lags the file when this change, or an earlier one, was written without a reload.
    pending = upstream_changed or bool(current and current.get("reload_pending"))
    reload_now = pending and params["reload"]
    # rendered without a reload: the caller (the role's handler) reloads for a pending change too.
    if pending and not reload_now and params["state"] != "rendered":
        new["reload_pending"] = True
    result["changed"] = upstream_changed or reload_now or current != new
    result["configured"] = True
    if module._diff:
        result["diff"] = {"before": before or "", "after": after,
                          "before_header": upstream_path, "after_header": upstream_path}
    if result["changed"] and not module.check_mode:
        if upstream_changed:
            handle, candidate = tempfile.mkstemp(dir=params["conf_dir"], prefix=f".{site}.upstream.")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as output:
                    output.write(after)
                ok, message = nginx.check(upstream_path, candidate)
            finally:
                os.unlink(candidate)
            if not ok:
                raise Refused(f"nginx -t refuses the upstream, left unchanged: {message}")
            write_file(module, upstream_path, after)
        os.makedirs(params["state_dir"], mode=0o755, exist_ok=True)
        write_file(module, state_path, json.dumps(new, indent=2, sort_keys=True) + "\n")
        if reload_now:
            ok, message = nginx.reload()
            if not ok:
                # Still pending: the next reload applies it.
                write_file(module, state_path, json.dumps(dict(new, reload_pending=True), indent=2,
                                                          sort_keys=True) + "\n")
                raise Refused(f"the upstream changed but nginx did not reload: {message}")
        result["reloaded"] = reload_now
    return dict(result, **report(new))


def locked(path):
    """An exclusive lock on the site's state: the backends of a batch change it in parallel."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    handle = open(path, "a", encoding="utf-8")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    lock = None
    try:
        check_request(params)
        # A state directory that does not exist yet holds no state to change, except with rendered.
        if params["state"] != "query" and not module.check_mode and \
                (params["state"] == "rendered" or os.path.isdir(params["state_dir"])):
            lock = locked(os.path.join(params["state_dir"], f".{params['site']}.lock"))
        result = apply(module, Nginx(module, params["checker"]), params)
    except Refused as error:
        module.fail_json(msg=str(error))
    finally:
        if lock is not None:
            lock.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
