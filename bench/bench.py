"""Benchmark harness: our stack against the original sample and its recipe.

    bench/run              full run: setups A-E interleaved, deploy timings with 2, 4, 8 backends
    bench/run --smoke      one short run per setup, deploy timings with 2 backends (part of `make test`)
    bench/run --variants   variants of setup C (Gunicorn and nginx inputs), interleaved with A and B
    bench/run --variants --only round-robin,workers-2  some variants only (fewer labs, a quieter machine)
    bench/run --soak       the load balancer's ports under 9 x 10 s of load: the kernel's default, then the role's
    bench/run --deploy-levers   re-runs of site.yml with 8 backends, each ansible.cfg speed-up undone in turn
    bench/run --rollout    rollouts of 8 backends under load: one at a time, in batches of 2 and of 25%
    bench/run --keep       leave the containers running afterwards (for a look around)

Everything runs on this machine, in containers on Docker networks this
harness creates (hello-bench-*), with load aimed at container addresses only.
Outputs go to results/bench-<mode>-<time>/: report.md, report.json, report.png.
The exit status is non-zero when any measured run had an error or a non-2xx
answer, or a re-run of site.yml changed something: such a run is INVALID.
Missed performance targets are reported, not failed on.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml  # ansible-core's dependency, so in the project venv

import loadgen
import original_stack
import reporting
import rollout
from cpu import CpuMeter
from labs import APP_VARS, BACKEND_PORT, Lab
from shell import PROJECT_ROOT, StepFailed, info, run, step

from tests.support.demo_release import demo_release
from tests.support.load import LoadGenerator

# Per mode: wrk load, warm-up rounds and their length, measured rounds (soak: slices
# per phase), and (full and smoke only) the backend counts whose idempotent re-run
# is timed, and how many re-runs each.
MODES = {
    "full": {
        "load": loadgen.Load(threads=2, connections=32, seconds=10),
        "warmup_rounds": 1,
        "warmup_seconds": 5,
        "measured_rounds": 5,
        "backend_counts": [2, 4, 8],
        "reruns": 3,
    },
    "smoke": {
        "load": loadgen.Load(threads=2, connections=32, seconds=2),
        "warmup_rounds": 0,
        "warmup_seconds": 0,
        "measured_rounds": 1,
        "backend_counts": [2],
        "reruns": 1,
    },
    "variants": {
        "load": loadgen.Load(threads=2, connections=32, seconds=10),
        "warmup_rounds": 1,
        "warmup_seconds": 5,
        "measured_rounds": 5,
    },
    # Consecutive slices of load on C, with the LB's TIME_WAIT sockets counted after each.
    "soak": {
        "load": loadgen.Load(threads=2, connections=32, seconds=10),
        "warmup_rounds": 0,
        "warmup_seconds": 0,
        "measured_rounds": 9,
    },
    # Idempotent re-runs only, no load: rounds of LEVERS, interleaved.
    "levers": {
        "warmup_rounds": 1,
        "measured_rounds": 3,
    },
    # One rollout of a new release per batch size, under ROLLOUT_LOAD.
    "rollout": {},
}
# The kernel setting the soak compares, and where its role default lives.
SOAK_SYSCTL = "net.ipv4.tcp_tw_reuse"
NGINX_LB_DEFAULTS = PROJECT_ROOT / "roles" / "nginx_lb" / "defaults" / "main.yml"
# TIME_WAIT lasts 60 s on Linux; a phase starts only once the previous one's have expired.
TIME_WAIT_DRAIN_SECONDS = 90

# What ansible.cfg sets to make deploys faster, each undone in turn by the environment
# variable that overrides it. strategy is not among them: the free strategy runs a
# run_once task (the stage play's release build) on every host, and ignores the
# deploy plays' any_errors_fatal.
LEVERS = {
    "ansible.cfg": {},
    "no-pipelining": {"ANSIBLE_PIPELINING": "False"},
    "no-fact-cache": {"ANSIBLE_CACHE_PLUGIN": "memory"},
    "forks-5": {"ANSIBLE_FORKS": "5"},
}
# Backends of the levers lab: forks only matter with more hosts than Ansible's default 5.
LEVERS_BACKENDS = 8
# Set in the caller's environment, these would change every lever's runs, the baseline's too.
LEVER_OVERRIDES = ("ANSIBLE_CONFIG", "ANSIBLE_PIPELINING", "ANSIBLE_CACHE_PLUGIN", "ANSIBLE_FORKS",
                   "ANSIBLE_GATHERING", "ANSIBLE_STRATEGY", "ANSIBLE_KEEP_REMOTE_FILES")

# The rollouts timed, in order, each of a release of its own: rolling_update.yml's extra vars. The
# canary (rolling_canary, on by default) goes alone before the batches.
ROLLOUTS = {
    "one at a time": {"rolling_serial": 1},
    "batches of 2": {"rolling_serial": 2},
    "batches of 25%": {"rolling_serial": "25%"},
}
ROLLOUT_BACKENDS = 8
# The load during each rollout: new-connection clients paced at this many requests/s in all, as the
# Molecule scenarios' (tests/support/load.py), so that the rollout's time is the deploy's, not the load's.
ROLLOUT_LOAD = {"concurrency": 8, "rate": 100}
# The targets: the 25% rollout's whole time, and how far the mean batch time may move with the batch size.
ROLLOUT_TARGET_SECONDS = 60
ROLLOUT_BATCH_SPREAD = 1.2

# The defaults before the backends were pinned to a CPU each: sync workers, no upstream keep-alive.
SYNC_BACKENDS = {"flask_app_worker_class": "sync", "nginx_lb_keepalive": 0}
ONE_CPU_BACKENDS = {
    "flask_app_worker_class": "gthread",
    "flask_app_workers": 1,
    "flask_app_max_requests": 0,
    "nginx_lb_keepalive": 32,
}
# Backends with a gthread process per CPU each sees (2 on shared cores), behind upstream keep-alive
# (docs/benchmark.md: the most requests/s measured, at 6 to 8 times sync's p99).
GTHREAD_PER_CPU_BACKENDS = {
    "flask_app_worker_class": "gthread",
    "flask_app_workers": 2,
    "nginx_lb_keepalive": 32,
}
# Variants of setup C: each is its own lab (LB + 2 backends) deployed with these extra vars.
# Those older than the pinned backends were measured with every container on every CPU (now --shared-cpus) and the
# defaults of their time, SYNC_BACKENDS. With the backends pinned, as by default now, "default" is the
# one-CPU profile (one-cpu differs only by asking for it), and lb-keepalive-32 is the default.
VARIANTS = {
    "default": {},
    # The first defaults, dropped for their tail (a queue per worker): gthread workers, upstream keepalive.
    "gthread-lb-keepalive-32": {"flask_app_worker_class": "gthread", "nginx_lb_keepalive": 32},
    # More thread slots per backend (5 workers x 4) than wrk keeps requests in flight on it (16).
    "gthread-4-threads-lb-keepalive-32": {
        "flask_app_worker_class": "gthread",
        "flask_app_threads": 4,
        "nginx_lb_keepalive": 32,
    },
    # The same without recycling workers: is the tail the restarts (max_requests) or the per-worker queues?
    "gthread-lb-keepalive-32-no-recycling": {
        "flask_app_worker_class": "gthread",
        "nginx_lb_keepalive": 32,
        "flask_app_max_requests": 0,
    },
    # A backend with one CPU: one gthread process, so one queue per backend
    # as with sync workers, upstream keepalive, and no recycling, which that lone worker cannot have.
    "one-cpu": ONE_CPU_BACKENDS,
    "one-cpu-round-robin": {**ONE_CPU_BACKENDS, "nginx_lb_balance_method": "round_robin"},
    "one-cpu-4-threads": {**ONE_CPU_BACKENDS, "flask_app_threads": 4},
    # One request at a time per backend: does the profile's tail come from its two threads sharing one core?
    "one-cpu-1-thread": {**ONE_CPU_BACKENDS, "flask_app_threads": 1},
    "gthread": {"flask_app_worker_class": "gthread"},
    # One gthread process per CPU (2 on shared cores, not 2 x CPUs + 1), with keep-alive: fewer per-process queues.
    "gthread-per-cpu-lb-keepalive-32": GTHREAD_PER_CPU_BACKENDS,
    # The same with each upstream connection closed after 50 requests: do new connections even out the queues?
    "gthread-per-cpu-keepalive-50-requests": {**GTHREAD_PER_CPU_BACKENDS, "nginx_lb_keepalive_requests": 50},
    # The same without recycling: is the tail the replacement of a recycled worker, as it is with one worker?
    "gthread-per-cpu-no-recycling": {**GTHREAD_PER_CPU_BACKENDS, "flask_app_max_requests": 0},
    "gthread-per-cpu-1-thread-lb-keepalive-32": {**GTHREAD_PER_CPU_BACKENDS, "flask_app_threads": 1},
    "lb-keepalive-32": {"nginx_lb_keepalive": 32},
    # The defaults before worker class auto, and what auto runs on backends with several CPUs.
    "sync-workers": SYNC_BACKENDS,
    # Fewer sync workers than Gunicorn's 2 x CPUs + 1: on shared cores two backends share 2 cores.
    "workers-2": {"flask_app_workers": 2},
    "workers-3": {"flask_app_workers": 3},
    # The original recipe's method, the load balancer's default before least_conn.
    "round-robin": {"nginx_lb_balance_method": "round_robin"},
    "request-log": {"flask_app_environment": {**APP_VARS["flask_app_environment"], "HELLO_SERVICE_REQUEST_LOG": True}},
    # What the per-client limits cost when nothing is refused: the role's defaults keep them on, C runs with them off
    # (one load generator is one client address), so these limits are high enough never to answer 429.
    "edge-limits-on": {"nginx_lb_rate_limit": 1000000, "nginx_lb_rate_limit_burst": 1000000,
                       "nginx_lb_connection_limit": 65535},
    # And the security headers on every answer (three add_header lines).
    "edge-no-security-headers": {"nginx_lb_security_headers": {}},
}


class Interrupted(Exception):
    """SIGTERM or SIGHUP: unwind so that the teardown in `finally` runs."""


def _raise_interrupted(signum, _frame):
    raise Interrupted(f"stopped by signal {signal.Signals(signum).name}")


def machine_facts(command: str) -> dict:
    memory_kib = int(
        next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:"))
    )
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    ours = ("hello-bench-",)
    others = [
        name for name in run(["docker", "ps", "--format", "{{.Names}}"]).stdout.split() if not name.startswith(ours)
    ]
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": int(run(["nproc"]).stdout.strip()),
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "load_average_at_start": " ".join(f"{value:.2f}" for value in os.getloadavg()),
        "other_containers": len(others),
        "wrk_version": run(["wrk", "-v"], check=False).stdout.split("[")[0].replace("wrk", "").strip(),
        "command": command,
    }


def interleaved_rounds(targets: dict, mode: dict, parts: dict | None = None) -> dict:
    """Run every target once per round, in the same order each round; return the runs per target.

    ``parts`` maps a target to its parts (load balancer, backends...) and their
    containers: each run then also records their CPU time per request.
    """
    load = mode["load"]
    parts = parts or {}
    meter = CpuMeter(sorted({name for target in parts.values() for names in target.values() for name in names}))
    warmup = loadgen.Load(load.threads, load.connections, mode["warmup_seconds"])
    runs = {key: [] for key in targets}
    total = mode["warmup_rounds"] + mode["measured_rounds"]
    for number in range(total):
        is_warmup = number < mode["warmup_rounds"]
        figures = []
        for key, url in targets.items():
            before = meter.snapshot()
            result = loadgen.run_wrk(url, warmup if is_warmup else load)
            per_request = CpuMeter.per_request_us(before, meter.snapshot(), result["requests"])
            if key in parts:
                result["cpu_us_per_request"] = {
                    part: round(sum(per_request[name] for name in names), 1) for part, names in parts[key].items()
                } | {"wrk": per_request["wrk"]}
            result.update(round=number, warmup=is_warmup)
            runs[key].append(result)
            flag = "" if loadgen.is_clean(result) else " ERRORS"
            figures.append(f"{key} {result['requests_per_s']:.0f}/s p99 {result['latency_ms']['p99']:.1f}ms{flag}")
        info(f"round {number + 1}/{total}{' (warm-up)' if is_warmup else ''}: " + ", ".join(figures))
    return runs


def check_serving(targets: dict) -> None:
    for url in targets.values():
        loadgen.probe(url)
    info(f"all {len(targets)} setups answer 200 with the expected JSON")


def rollout_validity(rollouts: dict) -> list[str]:
    """A rollout during which a request failed, or that switched nothing, is no measurement of a good one."""
    reasons = []
    for label, measured in rollouts.items():
        load = measured["load"]
        if load["errors"] or load["non_2xx"]:
            reasons.append(f"rollout {label}: {load['errors']} errors, {load['non_2xx']} non-2xx "
                           f"in {load['requests']} requests")
        if not measured["timings"]["batches"]:
            reasons.append(f"rollout {label}: no backend switched")
    return reasons


def validity(summary: dict, deploys: dict) -> list[str]:
    reasons = []
    for key, figures in summary.items():
        if figures["socket_errors"] or figures["non_2xx"]:
            reasons.append(f"{key}: {figures['socket_errors']} socket errors, {figures['non_2xx']} non-2xx")
    for label, runs in deploys.items():
        if label.startswith("rerun") and any(run["changed"] for run in runs):
            reasons.append(f"{label}: site.yml re-run changed {[run['changed'] for run in runs]}")
    return reasons


def tear_down(lab: Lab) -> None:
    """Remove the lab and the original's containers on its network; a no-op when gone."""
    original_stack.remove(lab.network)
    if run(["docker", "network", "inspect", lab.network], check=False).returncode == 0:
        lab.remove()


def tear_down_all(labs: list[Lab]) -> None:
    """Tear down every lab, even if one fails; raise at the end unless already unwinding."""
    failures = []
    for lab in labs:
        step(f"Tearing down {lab.network}")
        try:
            tear_down(lab)
        except StepFailed as error:
            print(f"ERROR: {error}", file=sys.stderr)
            failures.append(lab.network)
    # Inside `finally` while an error unwinds, that first error is the one to report.
    if failures and sys.exc_info()[0] is None:
        raise StepFailed(f"teardown failed for {', '.join(failures)}")


def prepare_lab(lab: Lab) -> None:
    """Remove what an earlier, killed run may have left under the same names."""
    tear_down(lab)
    lab.forget_cached_facts()


def labs_of_mode(
    mode_name: str, results_dir: Path, variants: list[str] | None = None, pin_backends: bool = True
) -> list[Lab]:
    """The labs a mode creates; in variants mode, one per variant named (all by default)."""
    if mode_name == "variants":
        return [
            Lab(
                name=f"var-{name}",
                backends=2,
                results_dir=results_dir,
                extra_vars=VARIANTS[name],
                pin_backends=pin_backends,
            )
            for name in variants or VARIANTS
        ]
    backends = {"levers": LEVERS_BACKENDS, "rollout": ROLLOUT_BACKENDS}.get(mode_name, 2)
    return [
        Lab(
            name={"full": "main"}.get(mode_name, mode_name),
            backends=backends,
            results_dir=results_dir,
            # The soak is about a connection per request; on pinned backends the defaults' single
            # gthread worker keeps its connections, and no port would be used up.
            extra_vars=SYNC_BACKENDS if mode_name == "soak" else {},
            pin_backends=pin_backends,
        )
    ]


def keep_or_tear_down(labs: list[Lab], keep: bool) -> None:
    if not keep:
        tear_down_all(labs)
        return
    for lab in labs:
        info(
            f"--keep: {lab.network} stays; remove it with: bench/run --teardown and the same mode option, "
            f"or ansible-playbook -i {lab.inventory_path} playbooks/lab.yml -e lab_state=absent "
            f"(after docker rm -f on label {original_stack.LABEL}={lab.network})"
        )


def benchmark(mode_name: str, results_dir: Path, keep: bool, report: dict, pin_backends: bool) -> None:
    mode = MODES[mode_name]
    (lab,) = labs_of_mode(mode_name, results_dir, pin_backends=pin_backends)
    deploys: dict[str, list[dict]] = {}
    try:
        step(f"Preparing the bench lab {lab.network} (LB + 2 backends) and the original's image")
        prepare_lab(lab)
        original_stack.ensure_image(lab.log_dir)
        lab.create_containers()
        original_stack.start(lab.network, owner=lab.network, pin_backends=pin_backends)

        step("Deploying the lab with site.yml: first converge, then idempotent re-run(s)")
        deploys["first-converge-2"] = [lab.deploy("first converge").as_dict()]
        deploys["rerun-2"] = [lab.deploy(f"re-run {n + 1}").as_dict() for n in range(mode["reruns"])]

        targets = {
            "A": original_stack.url("A", lab.network, loadgen.PATH),
            "B": original_stack.url("B", lab.network, loadgen.PATH),
            "C": lab.lb_url(loadgen.PATH),
            "D": f"http://{lab.address(lab.backend_host(1))}:{BACKEND_PORT}{loadgen.PATH}",
            "E": original_stack.url("E", lab.network, loadgen.PATH),
        }
        titles = {
            "C": "our stack: site.yml defaults, LB + 2 backends",
            "D": "one of our backends directly (no LB)",
        } | {key: original_stack.SETUPS[key]["title"] for key in ("A", "B", "E")}
        for url in targets.values():
            loadgen.wait_until_serving(url)
        check_serving(targets)

        step(
            f"Load: {' '.join(targets)} interleaved, {mode['warmup_rounds']} warm-up + "
            f"{mode['measured_rounds']} measured round(s) of {mode['load'].seconds}s"
        )
        parts = {
            "C": lab.cpu_parts,
            "D": {"backends": [lab.container(lab.backend_host(1))]},
        } | {key: original_stack.cpu_parts(key) for key in ("A", "B", "E")}
        runs = interleaved_rounds(targets, mode, parts)
        check_serving(targets)
        report["setups"] = {key: {"title": titles[key], "url": url, "runs": runs[key]} for key, url in targets.items()}

        for count in mode["backend_counts"][1:]:
            step(f"Scaling the lab to {count} backends, then timing idempotent re-run(s)")
            lab.backends = count
            lab.create_containers()
            deploys[f"converge-{count}"] = [lab.deploy(f"converge {count} backends").as_dict()]
            deploys[f"rerun-{count}"] = [
                lab.deploy(f"re-run {count} backends {n + 1}").as_dict() for n in range(mode["reruns"])
            ]
    finally:
        report["deploys"] = deploys
        keep_or_tear_down([lab], keep)


def compare_variants(results_dir: Path, keep: bool, report: dict, names: list[str], pin_backends: bool) -> None:
    """The variants NAMES of C in the same rounds as A and B, so that each variant's targets are one run's ratios."""
    mode = MODES["variants"]
    labs = dict(zip(names, labs_of_mode("variants", results_dir, names, pin_backends), strict=True))
    # A and B join the default variant's network; its teardown removes them.
    host_lab = labs["default"]
    references = ("A", "B")
    try:
        step(f"Creating {len(labs)} labs, one per variant of setup C, and the original's A and B")
        for lab in labs.values():
            prepare_lab(lab)
            lab.create_containers()
        original_stack.ensure_image(host_lab.log_dir)
        original_stack.start(host_lab.network, owner=host_lab.network, setups=references, pin_backends=pin_backends)
        step("Deploying each variant with site.yml (two at a time)")
        # Two at a time: the deploys are mostly waiting on docker exec round trips.
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda lab: lab.deploy("converge"), labs.values()))
        targets = {key: original_stack.url(key, host_lab.network, loadgen.PATH) for key in references} | {
            name: lab.lb_url(loadgen.PATH) for name, lab in labs.items()
        }
        for url in targets.values():
            loadgen.wait_until_serving(url)
        check_serving(targets)
        step(
            f"Load: A, B and {len(labs)} variants interleaved, {mode['warmup_rounds']} warm-up + "
            f"{mode['measured_rounds']} measured rounds of {mode['load'].seconds}s"
        )
        parts = {key: original_stack.cpu_parts(key) for key in references} | {
            name: lab.cpu_parts for name, lab in labs.items()
        }
        runs = interleaved_rounds(targets, mode, parts)
        check_serving(targets)
        titles = {key: original_stack.SETUPS[key]["title"] for key in references} | {
            name: " ".join(f"{k}={v}" for k, v in VARIANTS[name].items()) or "role defaults" for name in labs
        }
        report["setups"] = {key: {"title": titles[key], "url": url, "runs": runs[key]} for key, url in targets.items()}
    finally:
        keep_or_tear_down(list(labs.values()), keep)
    report["baseline"] = "default"
    report["variants"] = {name: [f"-e {k}={v}" for k, v in VARIANTS[name].items()] for name in names}


def compare_deploy_levers(results_dir: Path, keep: bool, report: dict, pin_backends: bool) -> None:
    """Idempotent re-runs of site.yml with each of ansible.cfg's speed-ups undone in turn, interleaved."""
    mode = MODES["levers"]
    inherited = [name for name in LEVER_OVERRIDES if name in os.environ]
    if inherited:
        raise StepFailed(f"unset {', '.join(inherited)}: the levers are measured against ansible.cfg as it is")
    (lab,) = labs_of_mode("levers", results_dir, pin_backends=pin_backends)
    deploys: dict[str, list[dict]] = {}
    labels = {name: f"rerun-{lab.backends} {name}" for name in LEVERS}
    try:
        step(f"Preparing the lab {lab.network} (LB + {lab.backends} backends) with site.yml")
        prepare_lab(lab)
        lab.create_containers()
        deploys["first-converge"] = [lab.deploy("first converge").as_dict()]
        # Each lever's first re-run warms what it alone uses (its own forks, its facts gathered afresh).
        rounds = mode["warmup_rounds"] + mode["measured_rounds"]
        step(f"Re-runs: {', '.join(LEVERS)} interleaved, {mode['warmup_rounds']} warm-up + "
             f"{mode['measured_rounds']} measured round(s)")
        names = list(LEVERS)
        for number in range(rounds):
            warmup = number < mode["warmup_rounds"]
            # A different lever goes first each round, so no lever always follows the same one.
            for name in names[number % len(names) :] + names[: number % len(names)]:
                deploy = lab.deploy(f"re-run {name} {'warm-up' if warmup else number}", env=LEVERS[name]).as_dict()
                deploys.setdefault(f"{labels[name]} warm-up" if warmup else labels[name], []).append(deploy)
    finally:
        report["deploys"] = deploys
        keep_or_tear_down([lab], keep)
    report["levers"] = {
        name: {"label": labels[name], "environment": [f"{key}={value}" for key, value in env.items()]}
        for name, env in LEVERS.items()
    }
    report["lever_rounds"] = {"warmup": mode["warmup_rounds"], "measured": mode["measured_rounds"]}


def measure_rollouts(results_dir: Path, keep: bool, report: dict, pin_backends: bool) -> None:
    """Each of ROLLOUTS in turn on an 8-backend lab, under paced load; where each one's time went."""
    (lab,) = labs_of_mode("rollout", results_dir, pin_backends=pin_backends)
    rollouts: dict[str, dict] = {}
    try:
        step(f"Preparing the lab {lab.network} (LB + {lab.backends} backends) with site.yml")
        prepare_lab(lab)
        lab.create_containers()
        report["deploys"] = {"first-converge": [lab.deploy("first converge").as_dict()]}
        address = lab.address(lab.lb_host)
        for label, extra in ROLLOUTS.items():
            # A new release, as a team's next commit is.
            source = demo_release(results_dir / "sources" / label.replace(" ", "-").replace("%", "pc"),
                                  f"\n# The bench's rollout {label!r}, {time.time()}.\n")
            step(f"Rollout {label} ({', '.join(f'{key}={value}' for key, value in extra.items())}) under "
                 f"{ROLLOUT_LOAD['rate']} requests/s")
            with LoadGenerator(address, min_requests=0, **ROLLOUT_LOAD) as load:
                result = lab.rollout(label, {**extra, "flask_app_source_dir": str(source)})
            timings = rollout.timings(result.task_spans)
            rollouts[label] = {
                "extra_vars": extra,
                "timings": timings,
                "load": {"requests": load.total, "ok": load.ok, "non_2xx": load.non_2xx, "errors": load.errors,
                         "samples": load.samples},
            }
            info(f"{label}: {timings['seconds']:.1f}s (staging {timings['staging']:.1f}s, "
                 f"{len(timings['batches'])} batches); load: {load.summary()}")
    finally:
        report["rollouts"] = rollouts
        keep_or_tear_down([lab], keep)
    report["rollout_targets"] = reporting.rollout_targets(rollouts, ROLLOUT_TARGET_SECONDS, ROLLOUT_BATCH_SPREAD)


def wait_for_time_wait_to_expire(lab: Lab) -> None:
    deadline = time.monotonic() + TIME_WAIT_DRAIN_SECONDS
    while (left := lab.time_wait_sockets(lab.lb_host)) > 0:
        if time.monotonic() > deadline:
            raise StepFailed(f"{lab.lb_host} still holds {left} TIME_WAIT sockets after {TIME_WAIT_DRAIN_SECONDS}s")
        time.sleep(5)


def soak(results_dir: Path, keep: bool, report: dict, pin_backends: bool) -> None:
    """Sustained load on C with the kernel's default tcp_tw_reuse on the LB, then with nginx_lb_sysctl's value.

    Without upstream keepalive the load balancer opens a connection to a
    backend for every request and closes about half of them first; each of
    those keeps its local port in TIME_WAIT for 60 s. That is what backends
    with sync workers cost (several CPUs each), so the soak's lab runs them,
    with keep-alive off (SYNC_BACKENDS). The containers' own
    /proc/sys is read-only (the role leaves it alone there): playbooks/lab.yml
    has the engine create the LB with the role's value, and each phase sets
    its value from this machine.
    """
    mode = MODES["soak"]
    (lab,) = labs_of_mode("soak", results_dir, pin_backends=pin_backends)
    try:
        role_value = (yaml.safe_load(NGINX_LB_DEFAULTS.read_text()).get("nginx_lb_sysctl") or {}).get(SOAK_SYSCTL)
        if role_value is None:
            raise StepFailed(f"{NGINX_LB_DEFAULTS.relative_to(PROJECT_ROOT)} sets no {SOAK_SYSCTL}: nothing to compare")
        role_value = str(role_value)
        missing = [tool for tool in ("nsenter", "unshare", "sysctl", "ss") if shutil.which(tool) is None]
        if missing:
            raise StepFailed(f"the soak needs {', '.join(missing)} on this machine (util-linux, procps, iproute2)")
        # The lab's LB already has the role's value; a new network namespace has the kernel's own.
        kernel_value = run(["unshare", "--net", "sysctl", "--values", SOAK_SYSCTL]).stdout.strip()
        if kernel_value == role_value:
            raise StepFailed(f"this kernel's default {SOAK_SYSCTL} is already {role_value}: nothing to compare")
        step(f"Preparing the soak lab {lab.network} (LB + 2 backends) with site.yml")
        prepare_lab(lab)
        lab.create_containers()
        lab.deploy("converge")
        url = lab.lb_url(loadgen.PATH)
        loadgen.wait_until_serving(url)
        check_serving({"C": url})
        if lab.sysctl(lab.lb_host, SOAK_SYSCTL) != role_value:
            raise StepFailed(f"playbooks/lab.yml did not create the LB with {SOAK_SYSCTL}={role_value}")
        phases = {
            f"tw_reuse={kernel_value}": (kernel_value, f"C, the LB with the kernel's default {SOAK_SYSCTL}"),
            f"tw_reuse={role_value}": (role_value, f"C, the LB with nginx_lb_sysctl's {SOAK_SYSCTL}"),
        }
        report["setups"] = {}
        for key, (value, title) in phases.items():
            step(f"{key}: waiting for the LB's TIME_WAIT sockets to expire, then {mode['measured_rounds']} x "
                 f"{mode['load'].seconds}s of load")
            wait_for_time_wait_to_expire(lab)
            lab.sysctl(lab.lb_host, SOAK_SYSCTL, value)
            runs = []
            for number in range(mode["measured_rounds"]):
                result = loadgen.run_wrk(url, mode["load"])
                result.update(round=number, warmup=False, lb_time_wait=lab.time_wait_sockets(lab.lb_host))
                runs.append(result)
                info(
                    f"{key} slice {number + 1}: {result['requests_per_s']:.0f}/s, "
                    f"p99 {result['latency_ms']['p99']:.1f}ms, LB TIME_WAIT {result['lb_time_wait']}"
                    + ("" if loadgen.is_clean(result) else " ERRORS")
                )
            check_serving({key: url})
            report["setups"][key] = {"title": title, "url": url, "runs": runs}
        report["soak"] = {
            "sysctl": SOAK_SYSCTL,
            "kernel_default": kernel_value,
            "role_value": role_value,
            # Errors with the kernel's default are what the soak looks for, not a broken run.
            "findings_only": [next(iter(phases))],
        }
    finally:
        keep_or_tear_down([lab], keep)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--smoke", action="store_true", help="one short run per setup; fails loudly on any error")
    group.add_argument("--variants", action="store_true", help="compare variants of setup C instead")
    group.add_argument(
        "--soak", action="store_true", help="9 x 10 s of load on C: the LB's ports with and without nginx_lb_sysctl"
    )
    group.add_argument(
        "--rollout",
        action="store_true",
        help=f"rollouts of {ROLLOUT_BACKENDS} backends under load: one at a time, in batches of 2 and of 25%%",
    )
    group.add_argument(
        "--deploy-levers",
        action="store_true",
        help=f"re-runs of site.yml with {LEVERS_BACKENDS} backends, each ansible.cfg speed-up undone in turn",
    )
    parser.add_argument(
        "--only",
        metavar="NAME,...",
        help=f"with --variants: measure only these variants (always with default); known: {', '.join(VARIANTS)}",
    )
    parser.add_argument("--keep", action="store_true", help="leave the containers running at the end")
    parser.add_argument(
        "--shared-cpus",
        action="store_true",
        help="every container on every CPU (the method before pinning); by default each backend of B and C "
        "is pinned to one CPU (docker --cpuset-cpus), as the lab's are",
    )
    parser.add_argument(
        "--runs", type=int, help="measured rounds (default: 5, smoke 1, deploy-levers 3; soak: slices per phase, 9)"
    )
    parser.add_argument("--duration", type=int, help="seconds per wrk run (default: 10, smoke 2)")
    parser.add_argument(
        "--teardown",
        action="store_true",
        help="only remove what a run of this mode left behind (bench/run's trap uses it)",
    )
    args = parser.parse_args()

    mode_name = (
        "smoke" if args.smoke
        else "variants" if args.variants
        else "soak" if args.soak
        else "levers" if args.deploy_levers
        else "rollout" if args.rollout
        else "full"
    )
    for name in VARIANTS:
        try:
            Lab(name=f"var-{name}", backends=2, results_dir=PROJECT_ROOT / "results")
        except StepFailed as error:
            parser.error(f"variant {name!r}: {error}")
    variants = list(VARIANTS)
    if args.only is not None:
        chosen = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = [name for name in chosen if name not in VARIANTS]
        if not args.variants or unknown or not chosen:
            parser.error(
                f"--only {args.only!r}: expected --variants and names from {', '.join(VARIANTS)}"
                + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            )
        # The default is every other variant's baseline.
        variants = [name for name in VARIANTS if name == "default" or name in chosen]
    pin_backends = not args.shared_cpus
    if args.teardown:
        try:
            tear_down_all(labs_of_mode(mode_name, PROJECT_ROOT / "results" / "bench-teardown"))
        except StepFailed as error:
            print(f"ERROR: {error}", file=sys.stderr)
            return 1
        return 0
    mode = MODES[mode_name]
    if args.runs:
        mode["measured_rounds"] = args.runs
    if args.duration:
        if "load" not in mode:
            parser.error(f"--duration: the {mode_name} mode sends no load")
        mode["load"] = loadgen.Load(mode["load"].threads, mode["load"].connections, args.duration)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_interrupted)

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    results_dir = PROJECT_ROOT / "results" / f"bench-{mode_name}-{stamp}"
    results_dir.mkdir(parents=True)
    command = "bench/run" + "".join(" " + shlex.quote(arg) for arg in sys.argv[1:])
    started = time.monotonic()
    load = mode.get("load")
    report = {
        "title": {
            "full": "our stack vs the original recipe",
            "smoke": "smoke run (not representative)",
            "variants": "variants of setup C (our stack), with A and B",
            "soak": "the load balancer's ports under sustained load",
            "levers": "deploy speed-ups of ansible.cfg, each undone in turn",
            "rollout": f"rollouts of {ROLLOUT_BACKENDS} backends under load",
        }[mode_name],
        "mode": mode_name,
        "meta": machine_facts(command),
        "setups": {},
    }
    report["meta"]["backends_pinned"] = pin_backends
    if load:
        report["load"] = {
            "threads": load.threads,
            "connections": load.connections,
            "seconds": load.seconds,
            "warmup_rounds": mode["warmup_rounds"],
            "warmup_seconds": mode["warmup_seconds"],
            "measured_rounds": mode["measured_rounds"],
        }
    step(f"Benchmark ({mode_name}); results in {results_dir}")
    try:
        with loadgen.client_ports_reusable() as tw_reuse:
            report["meta"]["tcp_tw_reuse"] = tw_reuse
            if mode_name == "variants":
                compare_variants(results_dir, args.keep, report, variants, pin_backends)
            elif mode_name == "soak":
                soak(results_dir, args.keep, report, pin_backends)
            elif mode_name == "levers":
                compare_deploy_levers(results_dir, args.keep, report, pin_backends)
            elif mode_name == "rollout":
                measure_rollouts(results_dir, args.keep, report, pin_backends)
            else:
                benchmark(mode_name, results_dir, args.keep, report, pin_backends)
    except (StepFailed, Interrupted, KeyboardInterrupt, subprocess.SubprocessError) as error:
        print(f"ERROR: {error}", file=sys.stderr)
        print(f"INVALID: the benchmark did not complete; logs in {results_dir / 'logs'}", file=sys.stderr)
        return 1

    report["summary"] = {
        key: reporting.summarise_runs(setup["runs"], load.connections) for key, setup in report["setups"].items()
    }
    if mode_name == "variants":
        report["variant_targets"] = {
            name: reporting.load_targets(report["summary"], report["setups"], ours=name) for name in variants
        }
    elif mode_name in ("full", "smoke"):
        report["targets"] = reporting.evaluate_targets(report["summary"], report["setups"], report["deploys"])
    report["recipe_scale"] = reporting.recipe_scale(report["summary"], report["setups"])
    report["meta"]["duration_s"] = round(time.monotonic() - started, 1)
    report["meta"]["load_average_at_end"] = " ".join(f"{value:.2f}" for value in os.getloadavg())
    findings_only = report.get("soak", {}).get("findings_only", [])
    checked = {key: figures for key, figures in report["summary"].items() if key not in findings_only}
    reasons = validity(checked, report.get("deploys", {})) + rollout_validity(report.get("rollouts", {}))
    report["valid"], report["invalid_reasons"] = not reasons, reasons
    written = reporting.write_outputs(report, results_dir, chart=mode_name in ("full", "variants"))
    print()
    print(reporting.markdown(report))
    step("Wrote " + ", ".join(str(path.relative_to(PROJECT_ROOT)) for path in written))
    if reasons:
        print("INVALID: " + "; ".join(reasons), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
