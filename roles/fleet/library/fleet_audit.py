#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Read the audit trail on one host: the last lines, and the last good release."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleet_audit
short_description: Read the last lines of the host's audit trail
description:
  - The trail is a file of JSON lines, one per deploy, rollback or maintenance
    change that touched the host; the fleet_lock module appends them when a
    run releases the lock.
  - Only the end of the file is read, however long it grows.
options:
  path:
    description: The audit trail's file.
    type: path
    required: true
  lines:
    description: How many of the last lines to return.
    type: int
    default: 10
"""

RETURN = r"""
entries:
  description: The last I(lines) lines, oldest first; a line that is not JSON is returned as C({"unreadable": text}).
  type: list
  elements: dict
  returned: always
last_good_release:
  description: The release of the last deploy or rollback whose outcome is C(succeeded), or an empty string.
  type: str
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.fleet_trail import tail


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "lines": {"type": "int", "default": 10},
        },
        supports_check_mode=True,
    )
    entries, last_good = tail(module.params["path"], module.params["lines"])
    module.exit_json(changed=False, entries=entries, last_good_release=last_good)


if __name__ == "__main__":
    main()
