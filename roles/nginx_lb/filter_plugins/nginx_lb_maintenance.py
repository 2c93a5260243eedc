# -*- coding: utf-8 -*-
"""The maintenance state file: what playbooks/maintenance.yml writes, and its check.

The site's configuration reads the file inside a `geo` block keyed by the
client's address; the file only sets that block's default: 1 (the client gets
the JSON 503) when maintenance is on, 0 when it is off. The networks of
nginx_lb_maintenance_allow follow it in the site's own configuration, with 0,
so they reach the app whatever the file says. The file holds no other
directive and nothing of the caller's but a checked on/off, so that no value
can add a directive to nginx's configuration.
"""

from __future__ import annotations

import json

from ansible.errors import AnsibleFilterError

STATES = ("on", "off")
# What nginx's `if` reads as true (a client refused) or false.
GEO_DEFAULTS = {"on": "1", "off": "0"}
# How the ansible-playbook command line names the state (playbooks/maintenance.yml).
COMMAND_LINE = "-e maintenance=on|off"


def maintenance_errors(value, variable="nginx_lb_maintenance"):
    """[] for "on" or "off"; else one problem naming VARIABLE and the value.

    Only those two strings: `-e maintenance=on` gives the text, while YAML
    (`maintenance: on` in a vars file) gives a boolean, refused rather than guessed.
    """
    if isinstance(value, str) and value in STATES:
        return []
    try:
        shown = json.dumps(value)
    except TypeError:
        shown = repr(value)
    return [f"{variable} ({COMMAND_LINE}) must be on or off, got {shown}"]


def maintenance_file(value, site):
    """The state file's text for VALUE ("on" or "off") of SITE (nginx_lb_site_name, checked by preflight)."""
    errors = maintenance_errors(value)
    if errors:
        raise AnsibleFilterError(errors[0])
    return (f"# Maintenance mode of {site}: {value}. playbooks/maintenance.yml writes this file;\n"
            "# the nginx_lb role only creates it (off) where it is missing, so that a re-run\n"
            "# of site.yml does not end a maintenance. 1: clients outside\n"
            "# nginx_lb_maintenance_allow get 503; 0: every client reaches the app.\n"
            f"default {GEO_DEFAULTS[value]};\n")


class FilterModule:
    def filters(self):
        return {
            "nginx_lb_maintenance_errors": maintenance_errors,
            "nginx_lb_maintenance_file": maintenance_file,
        }
