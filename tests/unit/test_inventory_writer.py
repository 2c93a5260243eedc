"""Inventories are YAML documents that Ansible reads back as written."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import inventory


def ansible_inventory(path):
    command = [str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(path), "--list"]
    # Outside the project: its ansible.cfg would add cached facts of hosts with the same names.
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True, cwd=Path(path).parent).stdout)


def test_groups_hosts_and_variables_as_ansible_reads_them(tmp_path):
    document = inventory.document(
        {"loadbalancers": {"lb1": {"ansible_host": "c-lb1"}}, "backends": {"app1": {}, "app2": {"weight": 2}}},
        {"loadbalancers": {"expose": True}, "backends": {"port": 8080}},
        {"template": "{{ inventory_hostname in ['app2'] }}", "quoted": "a: b # not a comment"},
    )
    path = inventory.write(tmp_path / "deep" / "hosts.yml", document, "Made by a test.\nSecond line.")
    assert path.read_text().startswith("---\n# Made by a test.\n# Second line.\nall:\n")
    listed = ansible_inventory(path)
    assert sorted(listed["backends"]["hosts"]) == ["app1", "app2"]
    assert listed["_meta"]["hostvars"]["lb1"] == {"ansible_host": "c-lb1", "expose": True,
                                                  "template": "{{ inventory_hostname in ['app2'] }}",
                                                  "quoted": "a: b # not a comment"}
    assert listed["_meta"]["hostvars"]["app2"]["weight"] == 2
    assert listed["_meta"]["hostvars"]["app1"]["port"] == 8080


def test_an_empty_group_and_a_group_with_variables_only(tmp_path):
    path = inventory.write(tmp_path / "hosts.yml", inventory.document({"backends": {}}, {"spares": {"x": 1}}))
    assert inventory.read(path) == {"all": {"children": {"backends": {"hosts": {}}, "spares": {"vars": {"x": 1}}}}}


def test_a_scenario_inventory_reaches_the_scenario_containers(tmp_path, monkeypatch):
    from tests.support import hosts

    # As Molecule writes it from the scenario's instance config: how to reach each host, and nothing else
    # of the host's that the written inventory should carry.
    reach = {"ansible_connection": "ssh", "ansible_port": 22, "ansible_user": "root",
             "ansible_private_key_file": "/tmp/s/ssh/id_ed25519", "ansible_ssh_common_args": "-o ControlPersist=60s"}
    molecule_inventory = inventory.write(tmp_path / "molecule.yml", inventory.document(
        {"ungrouped": {name: {"ansible_host": f"172.30.0.{number}", "molecule_only": True, **reach}
                       for number, name in enumerate(("lb1", "app1", "app2"), start=2)}}))
    monkeypatch.setenv("MOLECULE_INVENTORY_FILE", str(molecule_inventory))
    # testinfra reads the inventory with the ansible-inventory on PATH, as under make.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    path = hosts.write_inventory(tmp_path / "hosts.yml", {"loadbalancers": ["lb1"], "backends": ["app1", "app2"]},
                                 {"backends": {"flask_app_port": 8081}, "spares": {"unused": 1}},
                                 {"app2": {"nginx_lb_backend_weight": 3}},
                                 all_vars={"nginx_lb_backend_down": "{{ inventory_hostname == 'app1' }}"})
    listed = ansible_inventory(path)
    assert "spares" not in listed
    app2 = listed["_meta"]["hostvars"]["app2"]
    # The scenario's own group variables come first; those given here win.
    scenario = hosts.scenario_group_vars()
    assert scenario["all"] and scenario["loadbalancers"], "the shared Molecule config sets group variables"
    assert app2 == {**scenario["all"], **scenario.get("backends", {}),
                    "ansible_host": "172.30.0.4", **reach, "nginx_lb_backend_weight": 3, "flask_app_port": 8081,
                    "nginx_lb_backend_down": "{{ inventory_hostname == 'app1' }}"}
