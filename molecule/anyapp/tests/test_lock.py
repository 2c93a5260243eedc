"""The deploy lock and the audit trail, on the scenario's real hosts.

Runs after test_anyapp.py, whose deploys, failed deploys and rollback left
their lines in each host's audit trail. Two deploys started at once: one
goes on. A deploy killed outright leaves its lock: a dry run says so and goes
on, a real run stops naming it, and an explicit break clears it.
"""

import json
import os
import signal
import socket
import subprocess
import threading

from conftest import PROJECT, ansible_command, inventory, run_playbook, wait_for

testinfra_hosts = []

FLEET = ["app1", "app2", "lb1"]
STATE_DIR = "/var/lib/hello-fleet"
LOCK = f"{STATE_DIR}/deploy.lock"
TRAIL = f"{STATE_DIR}/audit.jsonl"


def host(name):
    return inventory().get_host(name)


def trail(name):
    text = host(name).run(f"cat {TRAIL}").stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def locked_hosts():
    return [name for name in FLEET if host(name).file(LOCK).exists]


def current_release(name):
    return host(name).file("/opt/greeter/current").linked_to.rsplit("/", 1)[1]


def project_commit():
    return subprocess.run(["git", "-C", PROJECT, "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_each_host_s_trail_records_the_runs_that_touched_it():
    trails = {name: trail(name) for name in FLEET}
    # Every host of the fleet has the same lines: each run touched all of them.
    assert len({json.dumps([{k: v for k, v in line.items() if k != "time"} for line in lines])
                for lines in trails.values()}) == 1, trails
    lines = trails["app1"]
    assert all(line["hosts"] == FLEET for line in lines)
    assert all(line["controller"] == socket.gethostname() and line["commit"] == project_commit() for line in lines)
    # test_anyapp.py's last runs: the rollback to version 1, then a re-run that changed nothing.
    assert [(line["operation"], line["outcome"], line["playbook"]) for line in lines[-2:]] == [
        ("rollback", "succeeded", "rollback.yml"), ("deploy", "succeeded", "site.yml")]
    assert lines[-1]["release"] == lines[-2]["release"] == current_release("app1")
    # The deploy whose before-switch hook failed: recorded by the fleet role's callback, the lock released.
    failed = [line for line in lines if line["outcome"] == "failed"]
    assert failed and all(line["operation"] == "deploy" for line in failed), lines
    assert locked_hosts() == []


def test_two_deploys_started_at_once_exactly_one_goes_on(scenario_hosts_file):
    before = {name: len(trail(name)) for name in FLEET}
    results = {}

    def deploy(name):
        results[name] = run_playbook("site.yml", scenario_hosts_file, check=False)

    threads = [threading.Thread(target=deploy, args=(name,)) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcomes = sorted(results.values(), key=lambda result: result[0])
    (won_rc, won_output, _), (lost_rc, lost_output, lost_stats) = outcomes
    assert won_rc == 0, won_output[-4000:]
    assert lost_rc != 0
    refusal = " ".join(lost_output.split())
    assert "the deploy lock is held by" in refusal and "with site.yml, since" in refusal, lost_output[-4000:]
    assert "Nothing was changed" in refusal
    # The run that lost stopped at the lock: it changed nothing on any host.
    assert all(counts["changed"] == 0 for counts in lost_stats.values()), lost_stats
    # One line per host, for the run that went on; the lock is released everywhere.
    assert {name: len(trail(name)) - before[name] for name in FLEET} == dict.fromkeys(FLEET, 1)
    assert {(line["operation"], line["outcome"]) for line in (trail(name)[-1] for name in FLEET)} == {
        ("deploy", "succeeded")}
    assert locked_hosts() == []


def test_a_killed_deploy_leaves_its_lock_until_it_is_broken(scenario_hosts_file):
    argv, env, cwd = ansible_command("ansible-playbook", "-i", str(scenario_hosts_file), f"{PROJECT}/site.yml")
    killed = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: len(locked_hosts()) == len(FLEET), timeout=120, what="the deploy to take the lock")
    finally:
        # Power loss for the controller's run: no callback, no finish play.
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
    assert locked_hosts() == FLEET
    trail_length = len(trail("app1"))

    # A dry run neither waits for the lock nor takes it: it says who holds it.
    returncode, output, _ = run_playbook("site.yml", scenario_hosts_file, "--check", check=False)
    assert returncode == 0, output[-4000:]
    assert "a real run would stop here" in " ".join(output.split())

    returncode, output, stats = run_playbook("site.yml", scenario_hosts_file, check=False)
    refusal = " ".join(output.split())
    assert returncode != 0
    assert f"its run (process {killed.pid}) is no longer running on this controller" in refusal, output[-4000:]
    assert "a killed run left it" in refusal and "fleet_lock_break=true" in refusal
    assert all(counts["changed"] == 0 for counts in stats.values()), stats
    assert locked_hosts() == FLEET

    returncode, output, _ = run_playbook("site.yml", scenario_hosts_file, "-e", "fleet_lock_break=true", check=False)
    assert returncode == 0, output[-4000:]
    assert "broke the deploy lock held by" in " ".join(output.split())
    assert locked_hosts() == []
    # The killed run and the refused one left no line; the run that broke the lock did.
    assert len(trail("app1")) == trail_length + 1


def test_the_releases_listing_shows_each_host_s_trail(scenario_hosts_file):
    returncode, output, _ = run_playbook("playbooks/releases.yml", scenario_hosts_file, check=False)
    assert returncode == 0, output[-4000:]
    last = trail("lb1")[-1]
    assert f"{last['time']} deploy succeeded release={last['release']}" in " ".join(output.split()), output[-4000:]
    assert f"{current_release('app1')} installed" in output and "current" in output
