# -*- coding: utf-8 -*-
"""The fleet role's input checks, which preflight turns into one assert."""

from __future__ import annotations

import re

# An absolute path of plain names: it lands in argv and file modes, never in a shell.
STATE_DIR = re.compile(r"(/[A-Za-z0-9_][A-Za-z0-9_.+-]*)+\Z")
BOOLEANS = ("true", "false", "yes", "no", "1", "0")


def fleet_input_errors(inputs, groups):
    """Messages naming each bad input and its value; empty when all are good.

    inputs: the role's inputs by name; groups: the inventory's groups.
    """
    errors = []
    state_dir = str(inputs.get("fleet_state_dir", ""))
    if not STATE_DIR.match(state_dir) or "/../" in state_dir + "/" or "/./" in state_dir + "/":
        errors.append(f"fleet_state_dir={state_dir!r} is not an absolute path of plain names "
                      "(letters, digits and _.+-, no . or .. part)")
    lock_break = inputs.get("fleet_lock_break", False)
    if not isinstance(lock_break, bool) and str(lock_break).lower() not in BOOLEANS:
        errors.append(f"fleet_lock_break={lock_break!r} is not a boolean (true or false)")
    for name in ("fleet_backend_group", "fleet_loadbalancer_group"):
        group = inputs.get(name)
        if group is not None and group not in groups:
            errors.append(f"{name}={group!r}: the inventory has no group of that name")
    return errors


class FilterModule:
    def filters(self):
        return {"fleet_input_errors": fleet_input_errors}
