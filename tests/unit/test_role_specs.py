"""Each role's defaults/main.yml and meta/argument_specs.yml describe the same inputs.

The role READMEs show the defaults of the argument specs (make role-docs), while
Ansible uses defaults/main.yml; these tests keep the two from drifting apart.
"""

import pathlib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLES = sorted(path.parent.parent for path in ROOT.glob("roles/*/meta/argument_specs.yml"))


def load(path):
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8") as stream:
        return yaml.safe_load(stream) or {}


def same_data(left, right):
    """Equality of YAML data that, unlike ==, tells true from 1 and 1 from "1"."""
    if type(left) is not type(right):
        return isinstance(left, (int, float)) and isinstance(right, (int, float)) and not isinstance(
            left, bool) and not isinstance(right, bool) and left == right
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(same_data(left[key], right[key]) for key in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(same_data(a, b) for a, b in zip(left, right))
    return left == right


@pytest.fixture(params=ROLES, ids=lambda path: path.name)
def role(request):
    return request.param


def test_same_data_tells_types_apart():
    assert same_data({"a": [1, "x"]}, {"a": [1, "x"]})
    assert not same_data(True, 1)
    assert not same_data(1, "1")
    assert not same_data([1], [1, 2])


def test_every_default_is_an_input_of_main(role):
    defaults = load(role / "defaults" / "main.yml")
    main = load(role / "meta" / "argument_specs.yml")["argument_specs"]["main"].get("options") or {}
    assert sorted(defaults.keys() - main.keys()) == [], "in defaults/main.yml, not in the main argument spec"
    # A required input has no default: defaults/main.yml shows it commented out.
    optional = {name for name, option in main.items() if not (option or {}).get("required")}
    assert sorted(optional - defaults.keys()) == [], "in the main argument spec, not in defaults/main.yml"


def test_spec_defaults_equal_defaults_main(role):
    defaults = load(role / "defaults" / "main.yml")
    specs = load(role / "meta" / "argument_specs.yml")["argument_specs"]
    differences = [
        f"{point}.{name}: spec {option.get('default')!r} != defaults/main.yml {defaults[name]!r}"
        for point, spec in specs.items()
        for name, option in (spec.get("options") or {}).items()
        if name in defaults and not same_data(option.get("default"), defaults[name])
    ]
    assert differences == []
