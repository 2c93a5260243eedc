"""The deploy lock: the module's file handling on a host, and the controller's account of a holder."""

import importlib.util
import json
import multiprocessing
import os
import pathlib
import socket

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def load(kind, name):
    # The module and the action plugin share the name fleet_lock, as Ansible wants.
    spec = importlib.util.spec_from_file_location(f"{kind}_{name}", ROOT / "roles" / "fleet" / kind / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lock_module = load("library", "fleet_lock")
lock_action = load("action_plugins", "fleet_lock")

ALICE = {"token": "ctl/100/1", "operator": "alice", "controller": "ctl", "pid": 100, "playbook": "site.yml",
         "started": "2026-12-06T10:00:00Z"}
BOB = {"token": "other/200/7", "operator": "bob", "controller": "other", "pid": 200, "playbook": "rollback.yml",
       "started": "2026-12-06T10:01:00Z"}


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "state" / "deploy.lock")


def decide(path, state, holder, force=False, check_mode=False, now=1000.0):
    return lock_module.decide(path, state, holder, force, check_mode, now)


def test_a_free_lock_is_taken_with_its_holder_and_time(path):
    result = decide(path, "acquired", ALICE)
    assert result["acquired"] and result["held_by"] == {}
    with open(path, encoding="utf-8") as handle:
        assert json.load(handle) == dict(ALICE, since=1000.0)


def test_a_held_lock_is_refused_naming_its_holder_and_age(path):
    decide(path, "acquired", ALICE, now=1000.0)
    result = decide(path, "acquired", BOB, now=1042.0)
    assert not result["acquired"] and not result["changed"]
    assert result["held_by"]["operator"] == "alice" and result["age"] == 42
    assert lock_module.read_lock(path)["token"] == ALICE["token"]


def test_the_holder_takes_its_own_lock_again_without_change(path):
    decide(path, "acquired", ALICE)
    result = decide(path, "acquired", ALICE)
    assert result["acquired"] and not result["changed"]


def test_force_replaces_a_held_lock_and_says_whose_it_was(path):
    decide(path, "acquired", ALICE)
    result = decide(path, "acquired", BOB, force=True)
    assert result["acquired"] and result["broken"]["operator"] == "alice"
    assert lock_module.read_lock(path)["token"] == BOB["token"]


def test_a_release_by_another_holder_leaves_the_lock(path):
    decide(path, "acquired", ALICE)
    result = decide(path, "released", BOB)
    assert not result["changed"] and os.path.exists(path)


def test_the_holder_releases_its_lock(path):
    decide(path, "acquired", ALICE)
    assert decide(path, "released", ALICE)["changed"]
    assert not os.path.exists(path)


def test_check_mode_writes_nothing(path):
    assert decide(path, "acquired", ALICE, check_mode=True)["acquired"]
    assert not os.path.exists(path)


def test_a_damaged_lock_file_still_holds_the_lock(path):
    os.makedirs(os.path.dirname(path))
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("not json")
    result = decide(path, "acquired", ALICE)
    assert not result["acquired"] and result["held_by"]["operator"] == "unknown"


def test_writing_over_an_existing_lock_fails_without_force(path):
    assert lock_module.write_lock(path, ALICE)
    assert not lock_module.write_lock(path, BOB)
    assert lock_module.read_lock(path)["operator"] == "alice"


def _race(path, name, results):
    results.put((name, lock_module.write_lock(path, dict(ALICE, token=name))))


def test_of_runs_racing_for_the_lock_exactly_one_gets_it(tmp_path):
    context = multiprocessing.get_context("fork")
    for attempt in range(5):
        path = str(tmp_path / f"race{attempt}" / "deploy.lock")
        results = context.Queue()
        workers = [context.Process(target=_race, args=(path, f"run{index}", results)) for index in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        outcomes = dict(results.get() for _ in workers)
        winners = [name for name, won in outcomes.items() if won]
        assert len(winners) == 1
        assert lock_module.read_lock(path)["token"] == winners[0]


def test_a_holder_on_another_controller_is_taken_as_alive():
    assert lock_action.holder_alive(BOB)


def test_a_holder_on_this_controller_whose_process_is_gone_is_a_killed_run():
    holder = dict(ALICE, controller=socket.gethostname(), pid=2 ** 22 + 12345)
    assert not lock_action.holder_alive(holder)
    assert "a killed run left it" in lock_action.describe(holder, 75)


def test_a_running_holder_on_this_controller_is_alive():
    pid = os.getpid()
    holder = dict(ALICE, controller=socket.gethostname(), pid=pid,
                  token=f"{socket.gethostname()}/{pid}/{lock_action.process_start(pid)}")
    assert lock_action.holder_alive(holder)
    assert "killed" not in lock_action.describe(holder, 5)


def test_a_reused_pid_is_not_the_holder():
    pid = os.getpid()
    holder = dict(ALICE, controller=socket.gethostname(), pid=pid, token=f"{socket.gethostname()}/{pid}/1")
    assert not lock_action.holder_alive(holder)


def test_the_refusal_names_the_holder_the_playbook_the_age_and_the_break_input():
    message = lock_action.refusal("app1", BOB, 3725)
    for part in ("bob on other", "rollback.yml", "2026-12-06T10:01:00Z", "1h02m", "fleet_lock_break=true",
                 "Nothing was changed"):
        assert part in message


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (59, "59s"), (61, "1m01s"), (3600, "1h00m")])
def test_ages_read_as_hours_minutes_seconds(seconds, text):
    assert lock_action.format_age(seconds) == text


def test_this_run_s_token_is_the_same_in_every_task(tmp_path):
    first = lock_action.run_holder(str(tmp_path), pid=os.getpid())
    second = lock_action.run_holder(str(tmp_path), pid=os.getpid())
    assert first["token"] == second["token"] and first["started"] == second["started"]
    assert first["commit"] == "" and first["dirty"] is False


def test_the_repository_state_names_the_commit_and_uncommitted_changes(tmp_path):
    state = lock_action.repository_state(str(ROOT))
    assert len(state["commit"]) == 40 and isinstance(state["dirty"], bool)


def params(path, state, holder, **extra):
    return {"path": path, "state": state, "holder": holder, "force": False, **extra}


def test_taking_the_lock_reads_the_last_good_release_from_the_trail(path, tmp_path):
    trail = str(tmp_path / "audit.jsonl")
    lock_module.append(trail, {"operation": "deploy", "outcome": "succeeded", "release": "r1"})
    result = lock_module.run(params(path, "acquired", ALICE, trail=trail), False, 1000.0)
    assert result["acquired"] and result["last_good_release"] == "r1"


def test_the_holder_records_its_run_then_releases(path, tmp_path):
    trail = str(tmp_path / "audit.jsonl")
    decide(path, "acquired", ALICE)
    result = lock_module.run(params(path, "released", ALICE, trail=trail, record={"operation": "deploy"}), False, 0)
    assert result["changed"] and result["recorded"]["operation"] == "deploy"
    assert not os.path.exists(path) and lock_module.tail(trail, 5)[0][0]["operation"] == "deploy"


def test_a_run_that_does_not_hold_the_lock_records_nothing(path, tmp_path):
    trail = str(tmp_path / "audit.jsonl")
    decide(path, "acquired", ALICE)
    result = lock_module.run(params(path, "released", BOB, trail=trail, record={"operation": "deploy"}), False, 0)
    assert "recorded" not in result and not os.path.exists(trail) and os.path.exists(path)


def test_check_mode_records_nothing(path, tmp_path):
    trail = str(tmp_path / "audit.jsonl")
    decide(path, "acquired", ALICE)
    lock_module.run(params(path, "released", ALICE, trail=trail, record={"operation": "deploy"}), True, 0)
    assert not os.path.exists(trail) and os.path.exists(path)
