"""Where a rollout's time goes (bench/rollout.py), from task spans as tests/support/playbook.py reads them."""

import sys

import pytest

from tests.support.playbook import TaskSpan
from tests.unit.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))

import rollout  # noqa: E402 - bench/ is on the path only from here


def spans(*tasks):
    """TaskSpans one after another from t=100: (play number, play, task, seconds, results)."""
    made, at = [], 100.0
    for play_number, play, task, seconds, results in tasks:
        made.append(TaskSpan(play, play_number, task, at, at + seconds, results))
        at += seconds
    return made


def batch(play_number, hosts, restart, health, waited):
    switched = {host: {"changed": True, "steps": {"restart": restart, "health": health}} for host in hosts}
    # A slower host's figures are the batch's: the batch waits for it.
    first = hosts[0]
    switched[first] = {"changed": True, "steps": {"restart": restart + 1, "health": health}}
    play = rollout.SWITCH_PLAY
    return [
        (play_number, play, "Drain, switch, verify and undrain", 0.5, {}),
        (play_number, play, rollout.DRAIN_TASKS[0], 1.0, {host: {} for host in hosts}),
        (play_number, play, rollout.DRAIN_TASKS[1], 0.5, {host: {} for host in hosts}),
        (play_number, play, "flask_app : Switch to release 0123456789ab", restart + health + 1.5, switched),
        (play_number, play, rollout.UNDRAIN_TASKS[0], 0.5, {host: {} for host in hosts}),
        (play_number, play, rollout.UNDRAIN_TASKS[1], waited + 0.5, {host: {"waited": waited} for host in hosts}),
    ]


@pytest.fixture
def timed():
    return rollout.timings(spans(
        (1, "Check the backends' inputs", "Check the service's inputs", 2.0, {}),
        (2, rollout.STAGE_PLAY, "flask_app : Build the release artifact on the controller", 4.0, {}),
        (2, rollout.STAGE_PLAY, "flask_app : Install the release in its own virtual environment", 6.0, {}),
        *batch(3, ["app1"], 2.0, 1.0, 0.0),
        *batch(4, ["app2", "app3"], 3.0, 1.0, 2.0),
        # The last batch: its hosts were already on their release, so nothing switched.
        (5, rollout.SWITCH_PLAY, "flask_app : Leave out the hosts already on their release", 0.5, {"app4": {}}),
        (6, "Record the run and release the deploy lock", "fleet : Record the run", 1.0, {}),
    ))


def test_the_whole_rollout_staging_and_switching_are_timed(timed):
    # The batches take 7.5 s and 10.5 s, the batch that switched nothing 0.5 s.
    assert (timed["seconds"], timed["staging"]) == (2 + 4 + 6 + 7.5 + 10.5 + 0.5 + 1, 10.0)
    assert timed["switching"] == 7.5 + 10.5 + 0.5
    # Staging's slowest tasks, slowest first.
    assert list(timed["staging_tasks"].items()) == [
        ("flask_app : Install the release in its own virtual environment", 6.0),
        ("flask_app : Build the release artifact on the controller", 4.0)]


def test_each_batch_that_switched_is_timed_by_step_with_its_slowest_host(timed):
    assert [batch["hosts"] for batch in timed["batches"]] == [["app1"], ["app2", "app3"]]
    second = timed["batches"][1]
    assert second["seconds"] == 10.5
    assert second["steps"] == {"drain": 1.5, "restart": 4.0, "health": 1.0, "undrain": 3.0, "readmit_wait": 2.0,
                               "other": 10.5 - 1.5 - 4.0 - 1.0 - 3.0}


def test_the_batch_time_spread_compares_the_mean_batch_after_the_canary():
    def measured(*seconds):
        return {"timings": {"batches": [{"seconds": value} for value in seconds]}}

    # The canary's batch is left out: 4 s vs 5 s a batch.
    assert rollout.batch_time_spread({"1": measured(9, 4, 4), "2": measured(9, 5)}) == pytest.approx(1.25)
    assert rollout.batch_time_spread({"1": measured(9)}) is None
