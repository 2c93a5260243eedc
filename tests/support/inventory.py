"""Ansible inventories written as YAML documents, with a YAML library."""

from __future__ import annotations

import os
from pathlib import Path

import yaml


def document(groups: dict[str, dict[str, dict]], group_vars: dict[str, dict] | None = None,
             all_vars: dict | None = None) -> dict:
    """The YAML inventory for GROUPS (group -> {host: host variables}), with variables per group and for all."""
    children = {}
    for group, hosts in groups.items():
        children[group] = {"hosts": {name: dict(variables or {}) or None for name, variables in hosts.items()}}
        if group_vars and group_vars.get(group):
            children[group]["vars"] = dict(group_vars[group])
    for group in set(group_vars or {}) - set(groups):
        children[group] = {"vars": dict(group_vars[group])}
    inventory = {"all": {"children": children}}
    if all_vars:
        inventory["all"]["vars"] = dict(all_vars)
    return inventory


def write(path: str | os.PathLike, inventory: dict, comment: str | None = None) -> Path:
    """Write INVENTORY (a document()) to PATH as YAML, COMMENT first; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "---\n" + "".join(f"# {line}\n" for line in (comment or "").splitlines())
    path.write_text(header + yaml.safe_dump(inventory, default_flow_style=False, sort_keys=False), encoding="utf-8")
    return path


def read(path: str | os.PathLike) -> dict:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)
