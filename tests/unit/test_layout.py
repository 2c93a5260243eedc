"""Every Python file a role ships is importable the way Ansible loads it."""

import importlib
import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLE_PYTHON = sorted(
    path for kind in ("library", "filter_plugins", "action_plugins", "callback_plugins", "module_utils")
    for path in ROOT.glob(f"roles/*/{kind}/*.py")
)


@pytest.mark.parametrize("path", ROLE_PYTHON, ids=lambda path: str(path.relative_to(ROOT)))
def test_role_python_imports(path):
    if path.parent.name == "module_utils":
        assert importlib.import_module(f"ansible.module_utils.{path.stem}")
        return
    # By its path, as Ansible loads modules and plugins: an action plugin has
    # the name of the module it runs.
    spec = importlib.util.spec_from_file_location(f"{path.parent.name}.{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
