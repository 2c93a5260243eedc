"""Run ansible-playbook and read what happened from Ansible's own events.

The one way the tests, the lab scripts and the benchmark run a playbook. A
callback of this package (callback_plugins/playbook_events.py) records every
task result and the final stats as JSON events, so nobody has to read the
PLAY RECAP text:

    result = run("site.yml", "inventories/local/hosts.yml", "--check", log=".logs/deploy.log")
    result.stats["app1"]["changed"]      # per host: ok, changed, failed, unreachable, skipped, rescued, ignored
    result.changed_tasks                 # [("app1", "flask_app : Stage the systemd unit"), ...]
    result.failures                      # [Failure(host, task, message), ...]
    result.task_spans                    # [TaskSpan(play, play_number, task, started, ended, results), ...]
    result.output                        # the human-readable log, also written to LOG

Ansible's configuration is the project's (ansible.cfg, or ANSIBLE_* in ENV),
with the stdout callback left to ansible.cfg; the callback needs no enabling,
so callbacks_enabled stays the user's too.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Where the playbook_events callback is, which writes the events a run is read from.
CALLBACK_PLUGINS = Path(__file__).resolve().parent / "callback_plugins"

# The counts of Ansible's PLAY RECAP, as Ansible's stats name them (the callback writes them so).
STAT_NAMES = {"ok": "ok", "changed": "changed", "failures": "failed", "dark": "unreachable",
              "skipped": "skipped", "rescued": "rescued", "ignored": "ignored"}
# Per-host results of a task (a loop's items come with the task's own result too).
RESULT_EVENTS = ("runner_on_ok", "runner_on_failed", "runner_on_unreachable", "runner_on_skipped")


@dataclass(frozen=True)
class Failure:
    """A task that failed or could not reach its host (ignored failures are not listed)."""

    host: str
    task: str
    message: str

    def __str__(self) -> str:
        return f"{self.host}: {self.task}: {self.message}"


@dataclass(frozen=True)
class TaskSpan:
    """One task of a run, from its start to the next task's (or play's, or the run's end), with its results.

    Under the linear strategy (ansible.cfg's) every host finishes a task before the next starts, so the
    span is the task's wall time. `task` is "role : name" as Ansible prints it; `results` maps each host
    to its result (the last one, for a loop). `play_number` counts the plays started (from 1): a play
    with `serial` starts once per batch.
    """

    play: str
    play_number: int
    task: str
    started: float
    ended: float
    results: dict = field(default_factory=dict, compare=False)

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass
class PlaybookResult:
    """A finished playbook run: its exit code, Ansible's events and the readable output."""

    argv: list[str]
    returncode: int
    seconds: float
    output: str
    events: list[dict] = field(repr=False)
    log: Path | None = None

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        """host -> {"ok": n, "changed": n, "failed": n, "unreachable": n, "skipped": n, ...}, from the final stats."""
        final = [event["event_data"] for event in self.events if event.get("event") == "playbook_on_stats"]
        if not final:
            return {}
        counts = final[-1]
        hosts = set()
        for name in (*STAT_NAMES, "processed"):
            hosts |= set(counts.get(name) or {})
        return {host: {ours: (counts.get(theirs) or {}).get(host, 0) for theirs, ours in STAT_NAMES.items()}
                for host in sorted(hosts)}

    @property
    def changed(self) -> int:
        """Changed results over every host."""
        return sum(counts["changed"] for counts in self.stats.values())

    @property
    def changed_tasks(self) -> list[tuple[str, str]]:
        """(host, task) for every task that reported a change, in order; a task is "role : name" as Ansible prints it."""
        return [(event["event_data"]["host"], task_name(event["event_data"])) for event in self.events
                if event.get("event") == "runner_on_ok" and result_status(event) == "changed"]

    def hosts_in_task(self, name: str, statuses: tuple[str, ...] = ("ok", "changed")) -> set[str]:
        """Hosts whose result for task NAME ("role : name" or the bare name) had one of STATUSES."""
        hosts = set()
        for event in self.events:
            data = event.get("event_data", {})
            if event.get("event") in RESULT_EVENTS and name in (task_name(data), data.get("task")):
                if result_status(event) in statuses:
                    hosts.add(data["host"])
        return hosts

    def results_of(self, name: str) -> dict[str, dict]:
        """host -> the result ("res") of task NAME ("role : name" or the bare name) that finished on it."""
        return {event["event_data"]["host"]: event["event_data"].get("res", {}) for event in self.events
                if event.get("event") in RESULT_EVENTS
                and name in (task_name(event["event_data"]), event["event_data"].get("task"))}

    @property
    def failures(self) -> list[Failure]:
        """Every failed or unreachable task result that stopped its host, with Ansible's message."""
        found = []
        for event in self.events:
            data = event.get("event_data", {})
            if event.get("event") in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
                found.append(Failure(data.get("host", "?"), task_name(data), failure_message(data.get("res", {}))))
        return found

    @property
    def task_spans(self) -> list[TaskSpan]:
        """Every task that started, in order, timed by the events' clock (see TaskSpan)."""
        spans, play, play_number, current = [], "", 0, None

        def close(at):
            if current is not None:
                spans.append(TaskSpan(play, play_number, current["task"], current["started"], at, current["results"]))

        for event in self.events:
            kind, data, at = event.get("event"), event.get("event_data", {}), event.get("time")
            if kind in ("playbook_on_play_start", "playbook_on_task_start", "playbook_on_stats"):
                close(at)
                current = None
                if kind == "playbook_on_play_start":
                    play, play_number = data["play"], play_number + 1
                elif kind == "playbook_on_task_start":
                    current = {"task": task_name(data), "started": at, "results": {}}
            elif kind in RESULT_EVENTS and current is not None:
                current["results"][data["host"]] = data.get("res", {})
        # A run that died before its stats: its last task ends with its last event.
        if current is not None and self.events:
            close(self.events[-1].get("time"))
        return spans

    def check(self) -> PlaybookResult:
        """This result, or an AssertionError naming the failed tasks and the log when the run failed."""
        if self.returncode != 0:
            failures = "\n".join(str(failure) for failure in self.failures) or self.output[-4000:]
            raise AssertionError(f"{shlex.join(self.argv)} failed (exit {self.returncode}); log: {self.log}\n{failures}")
        return self


def task_name(data: dict) -> str:
    role = data.get("role")
    return f"{role} : {data.get('task', '')}" if role else data.get("task", "")


def result_status(event: dict) -> str:
    """"ok", "changed", "failed", "unreachable" or "skipped", as the default callback prints a result."""
    kind = event.get("event")
    if kind == "runner_on_ok":
        return "changed" if event["event_data"].get("res", {}).get("changed") else "ok"
    return kind.removeprefix("runner_on_")


def failure_message(res: dict) -> str:
    """Ansible's message for a failed result, with a loop's failed items and a command's stderr."""
    parts = [str(res["msg"])] if res.get("msg") else []
    for item in res.get("results") or []:
        if isinstance(item, dict) and item.get("failed"):
            parts.append(f"item {item.get('item')!r}: {failure_message(item)}")
    if res.get("stderr"):
        parts.append(str(res["stderr"]))
    return "\n".join(parts) or json.dumps(res, default=str)[:2000]


def ansible_playbook() -> str:
    """This environment's ansible-playbook: the venv the caller runs in, else the one on PATH."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    return str(beside) if beside.exists() else (shutil.which("ansible-playbook") or "ansible-playbook")


def run(playbook: str | os.PathLike, inventory: str | os.PathLike, *args: str, env: dict | None = None,
        log: str | os.PathLike | None = None, timeout: float | None = None, cwd: str | os.PathLike = PROJECT_ROOT,
        check: bool = False) -> PlaybookResult:
    """Run PLAYBOOK on INVENTORY with ansible-playbook's extra ARGS; return the result (raise on failure if CHECK).

    ENV is added to this process's environment. The readable output goes to
    LOG when given (its directory is made), and stays in the result either way.
    A run that outlives TIMEOUT seconds is stopped and reported as failed.
    """
    argv = [ansible_playbook(), "-i", str(inventory), *map(str, args), str(playbook)]
    with tempfile.TemporaryDirectory(prefix="playbook-run-") as private_dir:
        events_file = Path(private_dir) / "events.jsonl"
        run_env = {**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", **(env or {})}
        # The callback's directory before any the caller's environment names.
        run_env["ANSIBLE_CALLBACK_PLUGINS"] = os.pathsep.join(
            filter(None, [str(CALLBACK_PLUGINS), run_env.get("ANSIBLE_CALLBACK_PLUGINS")]))
        run_env["PLAYBOOK_EVENTS_FILE"] = str(events_file)
        started = time.monotonic()
        # A session of its own: a run stopped at its timeout is stopped with its forks.
        process = subprocess.Popen(argv, cwd=cwd, env=run_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            output, _ = process.communicate(timeout=timeout)
            returncode = process.returncode
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            returncode = -1
        seconds = time.monotonic() - started
        events = read_events(events_file)
    log_path = None
    if log is not None:
        log_path = Path(log)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(f"$ {shlex.join(argv)}\n{output}", encoding="utf-8")
    if returncode == -1:
        output += f"\nplaybook run stopped: it did not finish within {timeout:.0f}s\n"
    result = PlaybookResult(argv=argv, returncode=returncode, seconds=seconds, output=output, events=events,
                            log=log_path)
    return result.check() if check else result


def read_events(path: Path) -> list[dict]:
    """The events the playbook_events callback wrote; none if the run stopped before Ansible started."""
    try:
        with path.open(encoding="utf-8") as lines:
            return [json.loads(line) for line in lines if line.strip()]
    except FileNotFoundError:
        return []


# The tests run the project's playbooks as a user does from the project root.
# Under Molecule the environment points at Molecule's own ansible.cfg, roles and
# fact cache: these settings put the project's back, with the fact cache that
# ansible.cfg turns on. It is kept apart per scenario (its ephemeral directory),
# since scenarios run side by side with hosts of the same names that differ
# (the rolling scenario's see one CPU); output has no colour codes.
USER_ENV = {"ANSIBLE_CONFIG": str(PROJECT_ROOT / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(PROJECT_ROOT / "roles"),
            "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"}


def user_env() -> dict:
    """USER_ENV, with the fact cache of this scenario (or of this test process, outside Molecule)."""
    home = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY") or _process_cache_dir()
    return {**USER_ENV, "ANSIBLE_CACHE_PLUGIN": "jsonfile", "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(Path(home) / "facts")}


@functools.cache
def _process_cache_dir() -> str:
    return tempfile.mkdtemp(prefix="playbook-facts-")


_runs = itertools.count(1)


def ansible_command(tool: str, *args: str) -> tuple[list[str], dict, Path]:
    """An Ansible CLI tool of this venv with the project's ansible.cfg, as a user runs it: (argv, env, cwd)."""
    return [str(Path(sys.executable).parent / tool), *args], {**os.environ, **user_env()}, PROJECT_ROOT


def run_as_user(playbook, inventory_path, *args, check=True) -> PlaybookResult:
    """Runs a playbook of the project as a user would; returns the whole result, events included.

    Each run's output is kept in .logs/playbooks/<scenario>/ (numbered in run order).
    """
    scenario = os.environ.get("MOLECULE_SCENARIO_NAME", "tests")
    log = PROJECT_ROOT / ".logs" / "playbooks" / scenario / f"{os.getpid()}-{next(_runs):03d}-{Path(playbook).stem}.log"
    result = run(PROJECT_ROOT / playbook, inventory_path, *args, env=user_env(), log=log)
    if check:
        assert result.returncode == 0, f"{result.output[-6000:]}\nfull log: {log}"
    return result


def run_playbook(playbook, inventory_path, *args, check=True):
    """Runs a playbook of the project as a user would (run_as_user); returns (returncode, output, stats).

    stats maps host -> {"ok": n, "changed": n, "failed": n, ...}.
    """
    result = run_as_user(playbook, inventory_path, *args, check=check)
    return result.returncode, result.output, result.stats


def main(argv: list[str] | None = None) -> int:
    """Command line for shell scripts: run a playbook, keep its log, write its stats as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log", required=True, help="file for the readable output")
    parser.add_argument("--stats", help="file for {host: {ok, changed, failed, ...}} and the changed tasks, as JSON")
    parser.add_argument("-i", "--inventory", required=True)
    parser.add_argument("playbook")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="more ansible-playbook arguments")
    options = parser.parse_args(argv)
    result = run(options.playbook, options.inventory, *options.args, log=options.log, cwd=os.getcwd())
    if options.stats:
        Path(options.stats).write_text(json.dumps(
            {"returncode": result.returncode, "seconds": round(result.seconds, 1), "stats": result.stats,
             "changed_tasks": result.changed_tasks, "failures": [vars(failure) for failure in result.failures]},
            indent=2) + "\n", encoding="utf-8")
    for host, counts in result.stats.items():
        print(f"{host}: " + " ".join(f"{name}={count}" for name, count in counts.items()))
    for failure in result.failures:
        print(f"FAILED {failure}", file=sys.stderr)
    return 0 if result.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
