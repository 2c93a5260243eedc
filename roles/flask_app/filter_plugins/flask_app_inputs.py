# -*- coding: utf-8 -*-
"""Shape checks of the app's inputs that land in its settings file, unit and accounts.

Each *_errors filter returns the list of problems (empty: the input is fine),
each naming the variable and the bad name or value, so that preflight can
fail before anything on a host changes. A secret's value is never shown.
flask_app_url_host writes a checked address the way Gunicorn's bind and a URL
take it.
"""

from __future__ import annotations

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


def url_host(address):
    """ADDRESS (an IP address, IPv6 with or without brackets) as host:port forms take it: IPv6 in brackets."""
    address = str(address)
    if ":" in address and not address.startswith("["):
        return "[%s]" % address
    return address


class FilterModule(object):
    def filters(self):
        return {
            "flask_app_environment_errors": environment_errors,
            "flask_app_wsgi_target_errors": wsgi_target_errors,
            "flask_app_service_name_errors": service_name_errors,
            "flask_app_account_name_errors": account_name_errors,
            "flask_app_prefix_errors": prefix_errors,
            "flask_app_address_families_errors": address_families_errors,
            "flask_app_url_host": url_host,
        }
