"""Every Python file a role ships is importable the way Ansible loads it."""

import importlib
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLE_PYTHON = sorted(
    path for kind in ("library", "filter_plugins", "action_plugins", "module_utils")
    for path in ROOT.glob(f"roles/*/{kind}/*.py")
)


@pytest.mark.parametrize("path", ROLE_PYTHON, ids=lambda path: str(path.relative_to(ROOT)))
def test_role_python_imports(path):
    name = path.stem if path.parent.name != "module_utils" else f"ansible.module_utils.{path.stem}"
    assert importlib.import_module(name)
