# -*- coding: utf-8 -*-
"""Shape checks of the load balancer's inputs that land in its nginx and sysctl files.

Each *_errors function returns the list of problems (empty: the input is
fine), each naming the variable and the bad value, so that preflight fails
before anything on a host changes. Every rule keeps a value to the words nginx
reads in its directive: no ';', '{', '}', '#', quote or line break can end
the directive, open a block or add another one. The filters
nginx_lb_input_errors (every check of the role's own inputs at once) and
nginx_lb_peer_errors (those of the upstream's backends) make preflight one
task per host each, instead of one per check.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re


def _load_site_name_rule():
    # The module nginx_lb_rotation imports this rule from the role's
    # module_utils, which a plugin on the controller cannot import by name.
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "module_utils", "nginx_lb_site_name.py")
    spec = importlib.util.spec_from_file_location("nginx_lb_site_name", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SITE_NAME_RULE = _load_site_name_rule()

# A client_max_body_size as nginx reads a size: a number of bytes, or of k, m or g.
BODY_SIZE = re.compile(r"[0-9]+[kKmMgG]?\Z")
# One name of server_name: a host name; a wildcard at its start or end
# (*.example.com, www.example.*); .example.com (the name and its subdomains);
# or _ (matches no host: the catch-all). Regular expressions (~...) are refused.
_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?"
_HOST = r"%s(\.%s)*" % (_LABEL, _LABEL)
_SERVER_NAME = r"((\*\.|\.)?%s|%s\.\*)" % (_HOST, _HOST)
SERVER_NAMES = re.compile(r"%s( +%s)*\Z" % (_SERVER_NAME, _SERVER_NAME))
# The hash directive's key, one word of text and variables ($name, ${name}),
# and its optional consistent flag (ketama consistent hashing).
_HASH_WORD = r"(\$[A-Za-z0-9_]+|\$\{[A-Za-z0-9_]+\}|[A-Za-z0-9_.:/@=&?+,%-])+"
HASH_KEY = re.compile(r"%s( consistent)?\Z" % _HASH_WORD)
# An absolute path of plain parts: no '.' or '..' part, no empty one, no
# trailing '/', and none of the characters nginx reads as a variable ($).
SAFE_PATH = re.compile(r"(/(?!\.\.?(/|\Z))[A-Za-z0-9_.+-]+)+\Z")
# An inventory group name as Ansible takes one.
GROUP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


def _problem(variable, value, expected):
    # As YAML or JSON would write it, as the upstream filter shows values: "a;b", 10, null.
    try:
        shown = json.dumps(value)
    except TypeError:
        shown = repr(value)
    return f"{variable} must be {expected}, got {shown}"


def _shaped(pattern, *words):
    """A test of a value: it matches `pattern`, or is one of `words`."""
    def accepts(value):
        if value in words:
            return True
        # A number in YAML (client_max_body_size: 10) is the size written as text.
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        return isinstance(value, str) and pattern.match(value) is not None
    return accepts


def _rule(variable, expected, accepts):
    """An *_errors filter: no problem for a value `accepts` takes, else one naming `variable` and the value."""
    def errors(value, variable=variable):
        return [] if accepts(value) else [_problem(variable, value, expected)]
    return errors


# The site's name names its files and its upstream.
site_name_errors = _rule("nginx_lb_site_name", SITE_NAME_RULE.SITE_NAME_SHAPE, SITE_NAME_RULE.is_site_name)
# The backend group is named in the site's comments.
group_name_errors = _rule(
    "nginx_lb_backend_group", "an inventory group name: letters, digits, '_' and '-', starting with a letter or '_'",
    _shaped(GROUP_NAME))
server_name_errors = _rule(
    "nginx_lb_server_name", "host names separated by spaces, each like example.com, *.example.com, .example.com or "
    "www.example.*, or _", _shaped(SERVER_NAMES))
hash_key_errors = _rule(
    "nginx_lb_hash_key", "one word of text and nginx variables ($name or ${name}), without spaces, quotes or ;{}#, "
    "optionally followed by consistent (e.g. $request_uri consistent)", _shaped(HASH_KEY))
access_log_errors = _rule(
    "nginx_lb_access_log", "off or an absolute path of letters, digits and '_.+-', with no '.', '..' or empty part",
    _shaped(SAFE_PATH, "off"))
body_size_errors = _rule(
    "nginx_lb_client_max_body_size", "a size as nginx reads it: digits, then optionally k, m or g (e.g. 1m, or 0 for "
    "no limit)", _shaped(BODY_SIZE))

# A kernel setting as sysctl.d takes it, and a value on one line of that file.
SYSCTL_KEY = re.compile(r"[a-z0-9_]+(\.[a-z0-9_-]+)+\Z")
SYSCTL_VALUE_BREAKING = re.compile("[\n='\"]")
# The methods nginx can combine with backup servers.
BACKUP_METHODS = ("round_robin", "least_conn")


def _in_range(value, low, high=None):
    """Whether VALUE, a whole number or its text ("8080" from -e), is within LOW and HIGH."""
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"-?[0-9]+", text):
        return False
    return int(text) >= low and (high is None or int(text) <= high)


def input_errors(inputs, backend_hosts):
    """Every problem with the role's inputs that argument_specs cannot express, in one list.

    INPUTS maps each nginx_lb_* variable checked here to its value;
    BACKEND_HOSTS are the hosts of nginx_lb_backend_group.
    """
    errors = (site_name_errors(inputs["nginx_lb_site_name"]) + group_name_errors(inputs["nginx_lb_backend_group"])
              + server_name_errors(inputs["nginx_lb_server_name"]) + hash_key_errors(inputs["nginx_lb_hash_key"])
              + access_log_errors(inputs["nginx_lb_access_log"])
              + body_size_errors(inputs["nginx_lb_client_max_body_size"]))
    if not backend_hosts:
        errors.append("nginx_lb_backend_group=%s names no host in the inventory: the upstream would be empty. Add "
                      "backends to that group or point the variable at the right group." % inputs["nginx_lb_backend_group"])
    port, keepalive = inputs["nginx_lb_listen_port"], inputs["nginx_lb_keepalive"]
    connect, read = inputs["nginx_lb_connect_timeout"], inputs["nginx_lb_read_timeout"]
    if not (_in_range(port, 1, 65535) and _in_range(keepalive, 0) and _in_range(connect, 1) and _in_range(read, 1)):
        errors.append("nginx_lb_listen_port must be within 1-65535, nginx_lb_keepalive >= 0 and the timeouts >= 1; got "
                      "listen_port=%s, keepalive=%s, connect_timeout=%s, read_timeout=%s" % (port, keepalive, connect, read))
    connections = inputs["nginx_lb_worker_connections"]
    if not _in_range(connections, 64, 262144):
        errors.append("nginx_lb_worker_connections must be within 64-262144 (each worker may then open twice as many "
                      "files, within systemd's default limit); got %s" % connections)
    sysctl = inputs["nginx_lb_sysctl"]
    if not isinstance(sysctl, dict) or any(
            not isinstance(key, str) or not SYSCTL_KEY.match(key) or isinstance(value, bool)
            or SYSCTL_VALUE_BREAKING.search(str(value)) for key, value in sysctl.items()):
        errors.append("nginx_lb_sysctl needs keys like net.ipv4.tcp_tw_reuse and one-line values (numbers or words, "
                      "not true/false, no '=' or quotes); got %s" % (sysctl,))
    return errors


def peer_errors(peers, balance_method, backend_group):
    """Problems with the upstream's backends as a whole (nginx_lb_upstream_peers checks each one)."""
    errors = []
    backups = [peer["host"] for peer in peers if peer.get("backup")]
    if backups and balance_method not in BACKUP_METHODS:
        errors.append("nginx cannot combine backup servers with nginx_lb_balance_method=%s; backups set on: %s"
                      % (balance_method, ", ".join(backups)))
    if not any(not peer.get("down") and not peer.get("backup") for peer in peers):
        errors.append("every backend of %s is marked down or backup (%s): nothing would serve"
                      % (backend_group, ", ".join(peer["host"] for peer in peers)))
    return errors


class FilterModule:
    def filters(self):
        return {
            "nginx_lb_input_errors": input_errors,
            "nginx_lb_peer_errors": peer_errors,
        }
