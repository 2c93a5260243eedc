"""Where a rollout's time goes: staging, then each batch and each step of its switch.

Read from the task spans of one playbooks/rolling_update.yml run
(tests/support/playbook.py, TaskSpan), as plays and tasks of the roles name
them, and from what the switch's modules report: flask_app_release's
`steps` (restart, health) and flask_app_intake's `waited`.
"""

from __future__ import annotations

STAGE_PLAY = "Stage the release on every backend"
SWITCH_PLAY = "Switch backends in batches, out of rotation"

# A switch's steps, in order, by the tasks that make them (a task's "role : name", or the start of it).
DRAIN_TASKS = ("nginx_lb : Mark the backend on each load balancer as down",
               "flask_app : Refuse new connections from the load balancers")
SWITCH_TASK = "flask_app : Switch to release"
UNDRAIN_TASKS = ("nginx_lb : Mark the backend on each load balancer as up",
                 "flask_app : Accept new connections, and wait until the load balancers that were refused send again")
STEPS = ("drain", "restart", "health", "undrain", "readmit_wait", "other")


def _starts_with_any(task: str, names: tuple[str, ...]) -> bool:
    return any(task.startswith(name) for name in names)


def _batches(spans: list) -> list[list]:
    """The switch play's spans, one list per batch: with `serial`, each batch starts the play anew."""
    batches: dict[int, list] = {}
    for span in spans:
        if span.play == SWITCH_PLAY:
            batches.setdefault(span.play_number, []).append(span)
    return list(batches.values())


def _most(results: dict, *path: str) -> float:
    """The largest number at PATH in any host's result (a batch waits for its slowest host), else 0."""
    values = []
    for result in results.values():
        value = result
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, (int, float)):
            values.append(float(value))
    return max(values, default=0.0)


def batch_timing(batch: list) -> dict:
    """One batch: its hosts that switched, its wall time and its steps' (seconds; `other` is the rest)."""
    seconds = batch[-1].ended - batch[0].started
    steps = dict.fromkeys(STEPS, 0.0)
    switched = set()
    for span in batch:
        if _starts_with_any(span.task, DRAIN_TASKS):
            steps["drain"] += span.seconds
        elif span.task.startswith(SWITCH_TASK):
            switched |= set(span.results)
            steps["restart"] += _most(span.results, "steps", "restart")
            steps["health"] += _most(span.results, "steps", "health")
        elif _starts_with_any(span.task, UNDRAIN_TASKS):
            steps["undrain"] += span.seconds
            steps["readmit_wait"] += _most(span.results, "waited")
    # The readmit wait is part of the undrain: `other` is what no step accounts for.
    steps["other"] = seconds - steps["drain"] - steps["restart"] - steps["health"] - steps["undrain"]
    return {"hosts": sorted(switched), "seconds": round(seconds, 2),
            "steps": {name: round(value, 2) for name, value in steps.items()}}


# Staging's tasks that took at least this long (seconds) are reported by name.
STAGING_TASK_SECONDS = 1.0


def timings(spans: list) -> dict:
    """The whole rollout, its staging (and its slowest tasks), and each batch that switched a host
    (see batch_timing)."""
    if not spans:
        return {"seconds": 0.0, "staging": 0.0, "staging_tasks": {}, "switching": 0.0, "batches": []}
    staging = [span for span in spans if span.play == STAGE_PLAY]
    batches = [batch_timing(batch) for batch in _batches(spans)]
    switch_spans = [span for span in spans if span.play == SWITCH_PLAY]
    return {
        "seconds": round(spans[-1].ended - spans[0].started, 2),
        "staging": round(staging[-1].ended - staging[0].started, 2) if staging else 0.0,
        "staging_tasks": {span.task: round(span.seconds, 2)
                          for span in sorted(staging, key=lambda span: span.seconds, reverse=True)
                          if span.seconds >= STAGING_TASK_SECONDS},
        "switching": round(switch_spans[-1].ended - switch_spans[0].started, 2) if switch_spans else 0.0,
        "batches": [batch for batch in batches if batch["hosts"]],
    }


def batch_time_spread(rollouts: dict) -> float | None:
    """Largest over smallest of the rollouts' mean batch time after the canary: 1.0 when batch size costs nothing."""
    means = []
    for rollout in rollouts.values():
        after_canary = rollout["timings"]["batches"][1:]
        if after_canary:
            means.append(sum(batch["seconds"] for batch in after_canary) / len(after_canary))
    if len(means) < 2 or min(means) <= 0:
        return None
    return max(means) / min(means)
