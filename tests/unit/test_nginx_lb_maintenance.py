"""The maintenance state: only on or off, and a file of one geo default."""

import pytest
from ansible.errors import AnsibleFilterError

from nginx_lb_maintenance import FilterModule, maintenance_errors, maintenance_file


def test_the_filters_are_registered():
    assert set(FilterModule().filters()) == {"nginx_lb_maintenance_errors", "nginx_lb_maintenance_file"}


@pytest.mark.parametrize("value", ["on", "off"])
def test_on_and_off_pass(value):
    assert maintenance_errors(value) == []


# YAML's on (a boolean) is refused rather than guessed: -e maintenance=on gives the text.
@pytest.mark.parametrize("value, shown", [("maybe", '"maybe"'), ("", '""'), ("ON", '"ON"'), (True, "true"),
                                          (None, "null"), ("on;", '"on;"'), ("on\\ndefault 0;", '"on\\\\ndefault 0;"')])
def test_anything_else_is_refused_naming_the_variable_and_the_value(value, shown):
    assert maintenance_errors(value) == [
        f"nginx_lb_maintenance (-e maintenance=on|off) must be on or off, got {shown}"]


@pytest.mark.parametrize("value, default", [("on", "default 1;"), ("off", "default 0;")])
def test_the_file_sets_only_the_geo_default(value, default):
    text = maintenance_file(value, "hello-service")
    directives = [line for line in text.splitlines() if not line.startswith("#")]
    assert directives == [default]
    assert text.startswith(f"# Maintenance mode of hello-service: {value}.") and text.endswith("\n")


def test_no_file_is_rendered_for_another_value():
    with pytest.raises(AnsibleFilterError, match='must be on or off, got "1; include x"'):
        maintenance_file("1; include x", "hello-service")
