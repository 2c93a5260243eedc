"""The scenario's fleet mixes every supported release: each backend runs the
same release id, installed from the wheels built for its own Python.

Runs before test_rolling.py (file order), on what converge deployed.
"""

import pytest

from conftest import SERVICE, inventory

testinfra_hosts = []

# Per host: the release (/etc/os-release's ID and VERSION_ID) and its Python.
FLEET = {
    "lb1": ("ubuntu", "24.04", None),
    "app1": ("debian", "12", "3.11"),
    "app2": ("debian", "13", "3.13"),
    "app3": ("ubuntu", "24.04", "3.12"),
}


def os_release(name):
    text = inventory().get_host(name).file("/etc/os-release").content_string
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    return fields["ID"], fields["VERSION_ID"].strip('"')


@pytest.mark.parametrize("name", sorted(FLEET))
def test_each_host_runs_its_release(name):
    assert os_release(name) == FLEET[name][:2]


@pytest.mark.parametrize("name", [name for name, (_, _, python) in sorted(FLEET.items()) if python])
def test_each_backend_s_service_runs_on_its_release_s_python(name):
    host = inventory().get_host(name)
    version = host.check_output(f"/opt/{SERVICE}/current/venv/bin/python -c "
                                "'import sys; print(\"%d.%d\" % sys.version_info[:2])'")
    assert version == FLEET[name][2]


def test_every_backend_runs_one_release_id():
    releases = {name: inventory().get_host(name).file(f"/opt/{SERVICE}/current").linked_to.rsplit("/", 1)[1]
                for name, (_, _, python) in FLEET.items() if python}
    assert len(set(releases.values())) == 1, releases
