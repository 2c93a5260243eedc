# -*- coding: utf-8 -*-
"""Shape checks of the app's inputs that land in its settings file, unit and accounts.

Each *_errors function returns the list of problems (empty: the input is
fine), each naming the variable and the bad name or value, so that preflight
can fail before anything on a host changes. A secret's value is never shown.
The filter flask_app_input_errors runs every check on the role's inputs at
once: one task per host instead of one per check.
flask_app_url_host writes a checked address the way Gunicorn's bind and a URL
take it.
"""

from __future__ import annotations

import ipaddress
import json
import re

# A name that shells, systemd and gunicorn.conf.py all take as an environment variable.
ENVIRONMENT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Characters that would end a line of the settings file: ASCII controls (tab,
# newline, carriage return...) and what Python's str.splitlines() also splits on.
LINE_BREAKING = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")
# The forms Gunicorn accepts: module, module:variable or module:factory(), each
# part a Python identifier. Arguments to the factory are refused: the target lands
# in the unit's ExecStart, where quotes and spaces would be systemd's to parse.
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
WSGI_TARGET = re.compile(r"%s(\.%s)*(:%s(\(\))?)?\Z" % (_IDENTIFIER, _IDENTIFIER, _IDENTIFIER))
# The service's name becomes a user, a group, a unit and directory names.
SERVICE_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}\Z")
# Values of these types are written as their text.
SCALARS = (str, int, float, bool)
# A system user or group name as Debian's adduser takes it and systemd's
# User= and Group= read it (at most 31 characters, utmp's limit).
ACCOUNT_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,30}\Z")
# An absolute path that systemd reads as it is in WorkingDirectory=, ExecStart=
# and EnvironmentFile=: parts of letters, digits and '_.+-' (no space or quote,
# which break words; no '%', a specifier; no '$' or backslash, expansions and
# escapes; no line break, a new directive), no '.', '..' or empty part.
SAFE_PATH = re.compile(r"(/(?!\.\.?(/|\Z))[A-Za-z0-9_.+-]+)+\Z")
# The deploy sets the prefix's owner and mode and keeps releases/ in it: it
# must be the service's own directory, not one the system shares.
SYSTEM_DIRECTORIES = frozenset(("/", "/usr", "/etc", "/var", "/opt", "/home"))
# Gunicorn tells systemd it is ready (Type=notify) over a Unix socket: the
# family under any of its names.
UNIX_FAMILIES = ("AF_UNIX", "AF_LOCAL", "AF_FILE")
# An address, not a name: the deploy compares it with the sockets the running
# service listens on, and Gunicorn would bind a name to whatever it resolves
# to. IPv6 has the shape nginx_lb checks backend addresses with.
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV6 = r"[0-9A-Fa-f]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*"
BIND_ADDRESS = re.compile(r"((%s\.){3}%s|\[%s\]|%s)\Z" % (_OCTET, _OCTET, _IPV6, _IPV6))
# What Gunicorn's forwarded_allow_ips takes: *, IPv4 or IPv6 addresses and
# networks. It refuses a host name only when the service starts, after the
# release is installed.
TRUSTED_ENTRY = re.compile(r"([*]|[0-9]{1,3}([.][0-9]{1,3}){3}(/[0-9]{1,2})?"
                           r"|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(/[0-9]{1,3})?)\Z")


def environment_errors(mapping, variable, reserved_prefixes=(), reserved_names=(), taken=None, secret=False):
    """Problems with a mapping of environment variable names to values.

    reserved_names are set by the deploy itself (the release id); taken maps
    the variable name of another mapping to the names it sets already.
    """
    taken = taken or {}
    if not isinstance(mapping, dict):
        return ["%s must be a mapping of names to values, got %s" % (variable, type(mapping).__name__)]
    errors = []
    for name in sorted(mapping, key=str):
        value = mapping[name]
        if not isinstance(name, str) or not ENVIRONMENT_NAME.match(name):
            errors.append("%s: %r is not an environment variable name (a letter or _, then letters, digits or _)"
                          % (variable, name))
            continue
        prefix = next((prefix for prefix in reserved_prefixes if name.startswith(prefix)), None)
        if prefix is not None:
            errors.append("%s: %s is reserved (names starting with %s are the role's own settings)"
                          % (variable, name, prefix))
            continue
        if name in reserved_names:
            errors.append("%s: %s is set by the deploy (flask_app_release_id_variable)" % (variable, name))
            continue
        other = next((other for other, names in sorted(taken.items()) if name in names), None)
        if other is not None:
            errors.append("%s: %s is set in %s already" % (variable, name, other))
            continue
        shown = "(value not shown)" if secret else repr(value)
        if isinstance(value, (dict, list)) or value is None or not isinstance(value, SCALARS):
            errors.append("%s: %s must be a string, a number or a boolean, got %s %s"
                          % (variable, name, type(value).__name__, shown))
        elif LINE_BREAKING.search(str(value)):
            errors.append("%s: %s must not hold a line break or control character, got %s" % (variable, name, shown))
    return errors


def wsgi_target_errors(target, variable="flask_app_wsgi_target"):
    """Problems with what Gunicorn is told to serve."""
    if isinstance(target, str) and WSGI_TARGET.match(target):
        return []
    return ["%s must be module, module:variable or module:factory() (Python identifiers, dotted modules), got %r"
            % (variable, target)]


def service_name_errors(name, variable="flask_app_name"):
    """Problems with the service's name."""
    if isinstance(name, str) and SERVICE_NAME.match(name):
        return []
    return ["%s must be 1 to 31 lowercase letters, digits and dashes, starting with a letter, got %r"
            % (variable, name)]


def account_name_errors(name, variable):
    """Problems with the name of the system user or group the service runs as."""
    if not isinstance(name, str) or not ACCOUNT_NAME.match(name):
        return ["%s must be a system account name: 1 to 31 lowercase letters, digits, '_' and '-', starting with a "
                "letter or '_', got %r" % (variable, name)]
    if name == "root":
        return ["%s must not be root: the service runs unprivileged, as an account the deploy locks (no password, "
                "no login shell), got %r" % (variable, name)]
    return []


def prefix_errors(prefix, variable="flask_app_prefix"):
    """Problems with the installation root, which lands on several lines of the unit."""
    if isinstance(prefix, str) and prefix in SYSTEM_DIRECTORIES:
        return ["%s must be a directory dedicated to the service, not %s, got %r"
                % (variable, ", ".join(sorted(SYSTEM_DIRECTORIES)), prefix)]
    if not isinstance(prefix, str) or not SAFE_PATH.match(prefix):
        return ["%s must be an absolute path of letters, digits and '_.+-', with no '.', '..' or empty part and "
                "no trailing '/', got %r" % (variable, prefix)]
    return []


def address_families_errors(families, variable="flask_app_restrict_address_families"):
    """Problems with the families the unit lets the service use (argument_specs checks each name)."""
    if not families:
        return ["%s must not be empty: an empty RestrictAddressFamilies= lifts the restriction, got %r"
                % (variable, families)]
    if not any(family in UNIX_FAMILIES for family in families):
        return ["%s must hold AF_UNIX: Gunicorn tells systemd it is ready over a Unix socket, got %r"
                % (variable, families)]
    return []


def whole_number(value):
    """VALUE as a whole number (argument_specs lets "8080" through as an int), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def at_least(value, minimum, maximum=None):
    number = whole_number(value)
    return number is not None and number >= minimum and (maximum is None or number <= maximum)


def gunicorn_errors(inputs):
    """Problems with the port, the bind address and Gunicorn's sizing and recycling."""
    errors = []
    if not at_least(inputs["flask_app_port"], 1, 65535):
        errors.append("flask_app_port must be within 1-65535, got %s" % inputs["flask_app_port"])
    address = inputs["flask_app_bind_address"]
    if not isinstance(address, str) or not BIND_ADDRESS.match(address):
        errors.append("flask_app_bind_address must be an IP address (IPv4, or IPv6 with or without brackets; 0.0.0.0 "
                      "or :: for every address), got %s" % json.dumps(address, default=str))
    workers, threads = inputs["flask_app_workers"], inputs["flask_app_threads"]
    timeout, graceful = inputs["flask_app_timeout"], inputs["flask_app_graceful_timeout"]
    if not (at_least(workers, 0) and at_least(threads, 0) and at_least(timeout, 1) and at_least(graceful, 1)):
        errors.append("flask_app_workers and flask_app_threads must be >= 0, flask_app_timeout and "
                      "flask_app_graceful_timeout >= 1; got workers=%s, threads=%s, timeout=%s, graceful_timeout=%s"
                      % (workers, threads, timeout, graceful))
    if inputs["flask_app_worker_class"] == "sync" and not (whole_number(threads) or 0) <= 1:
        errors.append("flask_app_threads must be 0 or 1 with flask_app_worker_class sync (Gunicorn would silently "
                      "run gthread instead), got %s" % threads)
    # Gunicorn forks a recycled worker's replacement only after it has exited.
    if whole_number(workers) == 1 and whole_number(inputs["flask_app_max_requests"]) != 0:
        errors.append("flask_app_max_requests must be 0 with flask_app_workers 1: Gunicorn forks a recycled "
                      "worker's replacement only after it has exited, so the backend would answer nothing while the "
                      "new worker starts; got flask_app_max_requests=%s. Set flask_app_max_requests to 0, or "
                      "flask_app_workers to 2 or more" % inputs["flask_app_max_requests"])
    return errors


def forwarded_allow_ips_errors(value, variable="flask_app_forwarded_allow_ips"):
    """Problems with the addresses Gunicorn trusts for X-Forwarded-Proto (comma separated)."""
    untrusted = [entry.strip() for entry in str(value).split(",") if not TRUSTED_ENTRY.match(entry.strip())]
    if not untrusted:
        return []
    return ["%s must list IP addresses or networks, comma separated, or *; got %s in '%s'"
            % (variable, ", ".join(entry or "(an empty entry)" for entry in untrusted), value)]


def metrics_errors(inputs):
    """Problems with the metrics listener: its port, its address and the addresses allowed to read it."""
    if not inputs.get("flask_app_metrics", False):
        return []
    errors = []
    port = inputs.get("flask_app_metrics_port")
    if not at_least(port, 1, 65535) or whole_number(port) == whole_number(inputs["flask_app_port"]):
        errors.append("flask_app_metrics_port must be within 1-65535 and differ from flask_app_port (%s): the public "
                      "listener never serves the metrics; got %s" % (inputs["flask_app_port"], json.dumps(port, default=str)))
    address = inputs.get("flask_app_metrics_bind_address")
    if not isinstance(address, str) or not BIND_ADDRESS.match(address):
        errors.append("flask_app_metrics_bind_address must be an IP address (IPv4, or IPv6 with or without brackets), "
                      "got %s" % json.dumps(address, default=str))
    allow = inputs.get("flask_app_metrics_allow")
    if not isinstance(allow, list):
        errors.append("flask_app_metrics_allow must be a list of IP addresses or networks, got %s"
                      % json.dumps(allow, default=str))
    else:
        bad = [entry for entry in allow if network_or_none(entry) is None]
        if bad:
            errors.append("flask_app_metrics_allow must list IP addresses or networks (10.0.0.5, 10.0.0.0/24); got %s"
                          % ", ".join(json.dumps(entry, default=str) for entry in bad))
    return errors


def network_or_none(value):
    """VALUE as an IP network (an address is a network of one), or None when it is neither."""
    if not isinstance(value, str) or LINE_BREAKING.search(value):
        return None
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return None


def monitoring_addresses(hosts, hostvars):
    """The IP addresses the inventory gives HOSTS (their ansible_host), to allow them to read the metrics.

    A host known by name only is left out: its address is not known before
    it resolves, so the inventory lists it in flask_app_metrics_allow.
    """
    addresses = []
    for host in hosts or []:
        address = str(hostvars.get(host, {}).get("ansible_host", host))
        if network_or_none(address) is not None and "/" not in address:
            addresses.append(address)
    return sorted(set(addresses))


def input_errors(inputs, reserved_prefixes=()):
    """Every problem with the role's inputs that argument_specs cannot express, in one list.

    INPUTS maps each flask_app_* variable checked here to its value. Every
    name and value of the environment and the secrets lands on a line of the
    settings file: none may add a line, and none may set one of the role's
    own Gunicorn settings (RESERVED_PREFIXES). The account, prefix and
    address families land in the unit, where a line break would add a
    directive.
    """
    errors = gunicorn_errors(inputs) + metrics_errors(inputs)
    if not at_least(inputs["flask_app_releases_keep"], 2):
        errors.append("flask_app_releases_keep must be >= 2 so that a rollback target always exists, got %s"
                      % inputs["flask_app_releases_keep"])
    if not str(inputs["flask_app_health_path"]).startswith("/"):
        errors.append("flask_app_health_path must start with '/', got %s" % inputs["flask_app_health_path"])
    errors += service_name_errors(inputs["flask_app_name"]) + wsgi_target_errors(inputs["flask_app_wsgi_target"])
    release_id_variable = inputs["flask_app_release_id_variable"]
    environment = inputs["flask_app_environment"]
    errors += environment_errors(environment, "flask_app_environment", reserved_prefixes, [release_id_variable])
    if release_id_variable:
        errors += environment_errors({release_id_variable: ""}, "flask_app_release_id_variable", reserved_prefixes)
    errors += environment_errors(inputs["flask_app_secrets"], "flask_app_secrets", reserved_prefixes,
                                 [release_id_variable],
                                 {"flask_app_environment": list(environment) if isinstance(environment, dict) else []},
                                 secret=True)
    errors += forwarded_allow_ips_errors(inputs["flask_app_forwarded_allow_ips"])
    errors += account_name_errors(inputs["flask_app_user"], "flask_app_user")
    errors += account_name_errors(inputs["flask_app_group"], "flask_app_group")
    errors += prefix_errors(inputs["flask_app_prefix"])
    errors += address_families_errors(inputs["flask_app_restrict_address_families"])
    return errors


def url_host(address):
    """ADDRESS (an IP address, IPv6 with or without brackets) as host:port forms take it: IPv6 in brackets."""
    address = str(address)
    if ":" in address and not address.startswith("["):
        return "[%s]" % address
    return address


class FilterModule(object):
    def filters(self):
        return {
            "flask_app_input_errors": input_errors,
            "flask_app_monitoring_addresses": monitoring_addresses,
            "flask_app_url_host": url_host,
        }
