"""The fleet role's input checks name the variable and the bad value."""

import pytest
from fleet_inputs import fleet_input_errors

GROUPS = {"backends": ["app1"], "loadbalancers": ["lb1"], "empty": []}
GOOD = {"fleet_state_dir": "/var/lib/hello-fleet", "fleet_lock_break": False, "fleet_backend_group": "backends",
        "fleet_loadbalancer_group": "loadbalancers"}


def test_good_inputs_pass():
    assert fleet_input_errors(GOOD, GROUPS) == []


@pytest.mark.parametrize("name, value", [
    ("fleet_state_dir", "var/lib/x"),
    ("fleet_state_dir", "/var/lib/../etc"),
    ("fleet_state_dir", "/var/lib/x y"),
    ("fleet_lock_break", "perhaps"),
    ("fleet_backend_group", "nosuchgroup"),
    ("fleet_loadbalancer_group", "servers"),
])
def test_a_bad_input_is_named_with_its_value(name, value):
    errors = fleet_input_errors(dict(GOOD, **{name: value}), GROUPS)
    assert len(errors) == 1 and errors[0].startswith(f"{name}=") and repr(value) in errors[0]
