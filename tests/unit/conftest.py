"""Makes the roles' Python importable in unit tests, as Ansible loads it.

Modules (`roles/*/library/*.py`) import as top-level modules by file name,
filter plugins (`roles/*/filter_plugins/*.py`) likewise, and a role's
`module_utils/*.py` as `ansible.module_utils.<name>`, which is how the
modules themselves import it when Ansible runs them.
"""

import pathlib
import sys

import ansible.module_utils

ROOT = pathlib.Path(__file__).resolve().parents[2]

for role in sorted((ROOT / "roles").iterdir()):
    for kind in ("library", "filter_plugins", "action_plugins"):
        directory = role / kind
        if directory.is_dir():
            sys.path.insert(0, str(directory))
    module_utils = role / "module_utils"
    if module_utils.is_dir():
        ansible.module_utils.__path__.append(str(module_utils))
