"""The playbook runner reads Ansible's events: real ansible-playbook runs on this machine (local connection)."""

import json
import sys

import pytest

from tests.support import playbook

PLAYBOOK = """\
---
- name: Exercise the runner
  hosts: all
  gather_facts: false
  tasks:
    - name: Change something everywhere
      ansible.builtin.command: "true"
      changed_when: true

    - name: Report without a change
      ansible.builtin.debug:
        msg: "readable output for {{ inventory_hostname }}"

    - name: Skip on web1
      ansible.builtin.command: "true"
      changed_when: false
      when: inventory_hostname != 'web1'

    - name: Fail and carry on
      ansible.builtin.command: "false"
      changed_when: false
      ignore_errors: true
      when: inventory_hostname == 'web1'

    - name: Fail one item on db1
      ansible.builtin.command: "sh -c 'echo {{ item }} >&2; exit {{ item }}'"
      changed_when: false
      loop: [0, 3]
      when: inventory_hostname == 'db1'

    - name: Never reached on db1
      ansible.builtin.debug:
        msg: after
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    directory = tmp_path_factory.mktemp("project")
    (directory / "play.yml").write_text(PLAYBOOK)
    (directory / "hosts.ini").write_text(
        "".join(f"{name} ansible_connection=local ansible_python_interpreter={sys.executable}\n"
                for name in ("web1", "db1")))
    return directory


@pytest.fixture(scope="module")
def result(project):
    return playbook.run(project / "play.yml", project / "hosts.ini", "-e", "unused=1", cwd=project,
                        log=project / "logs" / "play.log")


def test_exit_code_of_a_run_with_a_failed_host(result):
    assert result.returncode == 2


def test_stats_count_each_host_as_the_recap_does(result):
    assert result.stats == {
        "db1": {"ok": 3, "changed": 1, "failed": 1, "unreachable": 0, "skipped": 1, "rescued": 0, "ignored": 0},
        "web1": {"ok": 4, "changed": 1, "failed": 0, "unreachable": 0, "skipped": 2, "rescued": 0, "ignored": 1},
    }
    assert result.changed == 2


def test_changed_tasks_by_host_and_name(result):
    assert sorted(result.changed_tasks) == [("db1", "Change something everywhere"), ("web1", "Change something everywhere")]


def test_hosts_in_a_task_by_status(result):
    assert result.hosts_in_task("Report without a change") == {"web1", "db1"}
    assert result.hosts_in_task("Never reached on db1") == {"web1"}
    assert result.hosts_in_task("Skip on web1", ("skipped",)) == {"web1"}
    assert result.hosts_in_task("Fail one item on db1", ("failed",)) == {"db1"}


def test_results_of_a_task_by_host(result):
    results = result.results_of("Report without a change")
    assert {host: res["msg"] for host, res in results.items()} == {
        "web1": "readable output for web1", "db1": "readable output for db1"}


def test_failures_name_host_task_and_message_and_leave_out_ignored_ones(result):
    (failure,) = result.failures
    assert (failure.host, failure.task) == ("db1", "Fail one item on db1")
    assert "item 3: non-zero return code" in failure.message and "3" in failure.message.splitlines()[-1]


def test_check_raises_with_the_failures_and_the_log(result):
    with pytest.raises(AssertionError, match=r"(?s)exit 2.*play\.log.*db1: Fail one item on db1"):
        result.check()


def test_readable_output_is_kept_in_the_result_and_the_log(result, project):
    log = (project / "logs" / "play.log").read_text()
    assert log.splitlines()[0].endswith(f"-i {project / 'hosts.ini'} -e unused=1 {project / 'play.yml'}")
    assert "readable output for web1" in result.output and "readable output for web1" in log
    assert "\r" not in result.output


def test_a_successful_run_passes_check(project):
    result = playbook.run(project / "play.yml", project / "hosts.ini", "--limit", "web1", cwd=project, check=True)
    assert result.returncode == 0 and set(result.stats) == {"web1"}


def test_a_run_past_its_timeout_is_stopped_and_failed(project):
    (project / "slow.yml").write_text("---\n- name: Slow\n  hosts: web1\n  gather_facts: false\n  tasks:\n"
                                      "    - name: Wait\n      ansible.builtin.command: sleep 30\n")
    result = playbook.run(project / "slow.yml", project / "hosts.ini", cwd=project, timeout=3)
    assert result.returncode == -1 and result.seconds < 20
    assert "did not finish within 3s" in result.output


def test_command_line_writes_the_stats_as_json(project, capsys, monkeypatch):
    monkeypatch.chdir(project)
    code = playbook.main(["--log", "cli.log", "--stats", "cli.json", "-i", "hosts.ini", "play.yml", "--limit", "web1"])
    assert code == 0
    stats = json.loads((project / "cli.json").read_text())
    assert stats["returncode"] == 0 and stats["stats"]["web1"]["changed"] == 1
    assert stats["changed_tasks"] == [["web1", "Change something everywhere"]]
    assert "web1: ok=4 changed=1 failed=0" in capsys.readouterr().out
    assert (project / "cli.log").exists()


def test_facts_are_cached_per_scenario_as_ansible_cfg_caches_them(monkeypatch, tmp_path):
    monkeypatch.setenv("MOLECULE_EPHEMERAL_DIRECTORY", str(tmp_path))
    env = playbook.user_env()
    assert env["ANSIBLE_CONFIG"].endswith("/ansible.cfg")
    assert (env["ANSIBLE_CACHE_PLUGIN"], env["ANSIBLE_CACHE_PLUGIN_CONNECTION"]) == ("jsonfile", str(tmp_path / "facts"))
    monkeypatch.delenv("MOLECULE_EPHEMERAL_DIRECTORY")
    outside = playbook.user_env()["ANSIBLE_CACHE_PLUGIN_CONNECTION"]
    assert outside != str(tmp_path / "facts") and outside == playbook.user_env()["ANSIBLE_CACHE_PLUGIN_CONNECTION"]


def test_task_spans_time_each_task_in_order_with_its_results(result):
    spans = result.task_spans
    assert [span.task for span in spans] == ["Change something everywhere", "Report without a change", "Skip on web1",
                                             "Fail and carry on", "Fail one item on db1", "Never reached on db1"]
    assert {(span.play, span.play_number) for span in spans} == {("Exercise the runner", 1)}
    # Each starts where the one before it ended, and takes time.
    assert all(before.ended == after.started for before, after in zip(spans, spans[1:]))
    assert all(span.seconds > 0 for span in spans)
    assert set(spans[0].results) == {"web1", "db1"} and spans[0].results["web1"]["changed"] is True
    # A host that failed has no result in the tasks after its failure.
    assert set(spans[-1].results) == {"web1"}
