"""Figures from the raw runs: medians, targets, and the Markdown/JSON/PNG outputs."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import rollout


def spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def mean_latency_ms(connections: int, requests_per_s: float) -> float:
    """Little's law for wrk's closed loop: every connection always has one request out."""
    return connections / requests_per_s * 1000


def summarise_runs(runs: list[dict], connections: int) -> dict:
    """Median, min and max of the measured (non-warm-up) runs of one setup.

    p99_over_mean is how far the slowest 1% sit from the mean, which Little's
    law fixes at connections / throughput: 1.0 would mean every request
    waited exactly as long as every other.
    """
    measured = [run for run in runs if not run["warmup"]]
    # A run that completed no request has no mean; the verdict reports it as invalid.
    tail_ratios = [
        run["latency_ms"]["p99"] / mean_latency_ms(connections, run["requests_per_s"])
        for run in measured
        if run["requests_per_s"] > 0
    ]
    return {
        "runs": len(measured),
        "requests_per_s": spread([run["requests_per_s"] for run in measured]),
        "p50_ms": spread([run["latency_ms"]["p50"] for run in measured]),
        "p99_ms": spread([run["latency_ms"]["p99"] for run in measured]),
        "p99_over_mean": spread(tail_ratios) if tail_ratios else None,
        "non_2xx": sum(run["non_2xx"] for run in measured),
        "socket_errors": sum(sum(run["socket_errors"].values()) for run in measured),
        "warmup_errors": sum(run["non_2xx"] + sum(run["socket_errors"].values()) for run in runs if run["warmup"]),
        "cpu_us_per_request": {
            part: spread([run["cpu_us_per_request"][part] for run in measured])
            for part in (measured[0].get("cpu_us_per_request") or {} if measured else {})
        },
    }


def paired_ratios(runs_a: list[dict], runs_b: list[dict], metric) -> list[float]:
    """Per-round ratios A/B: each pair ran back to back, so they share the machine's noise."""
    by_round = {run["round"]: run for run in runs_b if not run["warmup"]}
    return [
        metric(run) / metric(by_round[run["round"]]) for run in runs_a if not run["warmup"] and run["round"] in by_round
    ]


def _round_range(setups: dict, first: str, second: str, metric) -> str:
    ratios = paired_ratios(setups[first]["runs"], setups[second]["runs"], metric)
    return f"per-round {min(ratios):.2f}-{max(ratios):.2f}" if ratios else ""


def _by_rps(run: dict) -> float:
    return run["requests_per_s"]


def _by_p99(run: dict) -> float:
    return run["latency_ms"]["p99"]


def _target(name, figure, needed, comparison, detail, met=None):
    if met is None and figure is not None:
        met = figure >= needed if comparison == ">=" else figure <= needed
    return {
        "target": name,
        "figure": None if figure is None else round(figure, 2),
        "needed": f"{comparison} {needed}",
        "met": met,
        "detail": detail,
    }


def rollout_targets(rollouts: dict, most_seconds: float, most_spread: float) -> list[dict]:
    """The 25% rollout within MOST_SECONDS with no failed request; the mean batch time after the canary
    moving with the batch size by at most MOST_SPREAD (largest over smallest)."""
    quarter = rollouts.get("batches of 25%")
    failed = quarter["load"]["errors"] + quarter["load"]["non_2xx"] if quarter else None
    return [
        _target(
            "the rollout in batches of 25% after a canary, seconds",
            quarter["timings"]["seconds"] if quarter else None,
            most_seconds,
            "<=",
            f"the whole rolling_update.yml run; {failed} failed requests" if quarter else "not run",
            met=None if quarter is None else quarter["timings"]["seconds"] <= most_seconds and failed == 0,
        ),
        _target(
            "mean batch time after the canary, largest / smallest over the batch sizes",
            rollout.batch_time_spread(rollouts),
            most_spread,
            "<=",
            ", ".join(rollouts) or "not run",
        ),
    ]


def rollout_table(rollouts: dict) -> list[str]:
    """One row per batch of each rollout, with the steps of its switch (the slowest host's, for a module's)."""
    lines = [
        "| Rollout | Whole (s) | Staging (s) | Batch | Hosts | Batch (s) | Drain | Restart | Health | Undrain "
        "(readmit wait) | Other | Requests (failed) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, measured in rollouts.items():
        timings, load = measured["timings"], measured["load"]
        for number, batch in enumerate(timings["batches"], start=1):
            steps = batch["steps"]
            first = number == 1
            lines.append(
                f"| {label if first else ''} | {timings['seconds'] if first else ''} "
                f"| {timings['staging'] if first else ''} | {number} | {', '.join(batch['hosts'])} | {batch['seconds']} "
                f"| {steps['drain']} | {steps['restart']} | {steps['health']} | {steps['undrain']} "
                f"({steps['readmit_wait']}) | {steps['other']} "
                f"| {(str(load['requests']) + ' (' + str(load['errors'] + load['non_2xx']) + ')') if first else ''} |"
            )
    return lines


def load_targets(summary: dict, setups: dict, ours: str = "C") -> list[dict]:
    """The issue's load targets for setup OURS, as ratios of medians from this one run.

    A variants run measures each variant in the same rounds as A and B, so
    OURS may be any of them; the D target needs D, which only the full run has.
    """

    def rps(key):
        return summary[key]["requests_per_s"]["median"]

    def p99(key):
        return summary[key]["p99_ms"]["median"]

    def throughput(other, needed):
        return _target(
            f"C req/s >= {needed} x {other}",
            rps(ours) / rps(other),
            needed,
            ">=",
            f"{rps(ours):.0f} / {rps(other):.0f} req/s; {_round_range(setups, ours, other, _by_rps)}",
        )

    targets = [
        throughput("A", 2.5),
        throughput("B", 1.3),
        _target(
            "C p99 <= 0.7 x B p99",
            p99(ours) / p99("B"),
            0.7,
            "<=",
            f"{p99(ours):.1f} / {p99('B'):.1f} ms; {_round_range(setups, ours, 'B', _by_p99)}",
        ),
    ]
    if "D" in summary:
        targets.append(throughput("D", 0.9))
    return targets


def recipe_scale(summary: dict, setups: dict) -> dict | None:
    """The original recipe (B) against the sample (A) in this run: the scale C >= 2.5 x A sits on.

    Both are the seed's code; B is what the issue's other throughput target
    asks C to beat by 30%. Where B itself serves less than 2.5 x A, that target
    asks C to out-serve the recipe.
    """
    if not {"A", "B"} <= summary.keys():
        return None
    rps = {key: summary[key]["requests_per_s"]["median"] for key in ("A", "B")}
    figure = rps["B"] / rps["A"]
    return {
        "ratio": "B req/s / A req/s",
        "figure": round(figure, 2),
        "c_needs_x_b": round(2.5 / figure, 2),
        "detail": f"{rps['B']:.0f} / {rps['A']:.0f} req/s; {_round_range(setups, 'B', 'A', _by_rps)}",
    }


def evaluate_targets(summary: dict, setups: dict, deploys: dict) -> list[dict]:
    """Every target of the issue: load (from this run's rounds) and deploy timings."""
    targets = load_targets(summary, setups)
    reruns_2 = deploys.get("rerun-2", [])
    if reruns_2:
        seconds = statistics.median(d["seconds"] for d in reruns_2)
        changed = [d["changed"] for d in reruns_2]
        targets.append(
            _target(
                "Re-run of the lab (LB + 2 backends) <= 15 s, changed=0",
                seconds,
                15,
                "<=",
                f"median of {len(reruns_2)} re-runs {seconds:.1f}s, changed={changed}",
                met=seconds <= 15 and not any(changed),
            )
        )
    reruns_8 = deploys.get("rerun-8", [])
    if reruns_2 and reruns_8:
        seconds_8 = statistics.median(d["seconds"] for d in reruns_8)
        seconds_2 = statistics.median(d["seconds"] for d in reruns_2)
        targets.append(
            _target(
                "Re-run with 8 backends <= 2.5 x re-run with 2",
                seconds_8 / seconds_2,
                2.5,
                "<=",
                f"{seconds_8:.1f}s / {seconds_2:.1f}s",
            )
        )
    else:
        targets.append(
            _target(
                "Re-run with 8 backends <= 2.5 x re-run with 2", None, 2.5, "<=", "not measured in this mode", met=None
            )
        )
    return targets


def _cell(spread_values: dict, digits: int) -> str:
    return f"{spread_values['median']:.{digits}f} ({spread_values['min']:.{digits}f}-{spread_values['max']:.{digits}f})"


def load_table(setups: dict, summary: dict, baseline: str | None = None) -> list[str]:
    """One row per setup; with a baseline, also its req/s and p99 relative to the baseline.

    The relative figures are medians of per-round ratios: each round ran the
    setups back to back, so a ratio within a round cancels most of the noise
    of a shared machine.
    """
    ratio_header = f" | req/s vs {baseline}, per-round median (min-max) | p99 vs {baseline}" if baseline else ""
    lines = [
        f"| Setup | What | req/s median (min-max) | p50 ms median (min-max) | p99 ms median (min-max) "
        f"| p99 / mean | errors | non-2xx | runs{ratio_header} |",
        "|---|---|---|---|---|---|---|---|---|" + ("---|---|" if baseline else ""),
    ]
    for key, setup in setups.items():
        figures = summary[key]
        ratio = ""
        if baseline:
            base_runs = setups[baseline]["runs"]
            by_rps = paired_ratios(setup["runs"], base_runs, _by_rps)
            by_p99 = paired_ratios(setup["runs"], base_runs, _by_p99)
            ratio = f" | {_cell(spread(by_rps), 2)} | {_cell(spread(by_p99), 2)}"
        lines.append(
            f"| {key} | {setup['title']} | {_cell(figures['requests_per_s'], 0)} | {_cell(figures['p50_ms'], 1)} "
            f"| {_cell(figures['p99_ms'], 1)} | {_cell(figures['p99_over_mean'], 2) if figures['p99_over_mean'] else '-'} "
            f"| {figures['socket_errors']} | {figures['non_2xx']} "
            f"| {figures['runs']}{ratio} |"
        )
    return lines


def cpu_table(setups: dict, summary: dict) -> list[str]:
    """CPU time per request, by part of each setup (containers' cgroups; wrk is the load generator)."""
    found = {part for key in setups for part in summary[key]["cpu_us_per_request"]}
    # The path of a request, then the load generator.
    parts = [part for part in ("load balancer", "backends", "app", "wrk") if part in found]
    parts += sorted(found - set(parts))
    if not parts:
        return []
    lines = [
        "| Setup | " + " | ".join(f"{part} µs/request median (min-max)" for part in parts) + " | all parts (medians) |",
        "|---|" + "---|" * (len(parts) + 1),
    ]
    for key in setups:
        figures = summary[key]["cpu_us_per_request"]
        cells = [_cell(figures[part], 0) if part in figures else "-" for part in parts]
        total = sum(figures[part]["median"] for part in figures)
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {total:.0f} |")
    return lines


def deploy_table(deploys: dict) -> list[str]:
    lines = ["| Deploy | Backends | Seconds median (min-max) | Runs | changed (per run) |", "|---|---|---|---|---|"]
    for label, runs in deploys.items():
        seconds = spread([run["seconds"] for run in runs])
        lines.append(
            f"| {label} | {runs[0]['backends']} | {_cell(seconds, 1)} | {len(runs)} "
            f"| {', '.join(str(run['changed']) for run in runs)} |"
        )
    return lines


def target_table(targets: list[dict]) -> list[str]:
    lines = ["| Target | Figure | Needed | Result | Detail |", "|---|---|---|---|---|"]
    for target in targets:
        result = {True: "met", False: "**missed**", None: "not measured"}[target["met"]]
        figure = "-" if target["figure"] is None else f"{target['figure']:.2f}"
        lines.append(f"| {target['target']} | {figure} | {target['needed']} | {result} | {target['detail']} |")
    return lines


def variant_target_table(variant_targets: dict) -> list[str]:
    """One row per variant, one column per load target, with that variant in C's place."""
    names = [target["target"] for target in next(iter(variant_targets.values()))]
    lines = ["| Variant as C | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for variant, targets in variant_targets.items():
        cells = [f"{target['figure']:.2f} {'met' if target['met'] else '**missed**'}" for target in targets]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return lines


def soak_table(setups: dict) -> list[str]:
    """One row per slice of load, the phases side by side, then each phase's worst slice against its first."""
    keys = list(setups)
    columns = [f"{key} {column}" for key in keys for column in ("req/s", "p99 ms", "LB TIME_WAIT", "errors")]
    lines = ["| Slice | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for number in range(max(len(setup["runs"]) for setup in setups.values())):
        cells = []
        for key in keys:
            runs = setups[key]["runs"]
            if number >= len(runs):
                cells.append("- | - | - | -")
                continue
            run = runs[number]
            errors = run["non_2xx"] + sum(run["socket_errors"].values())
            cells.append(
                f"{run['requests_per_s']:.0f} | {run['latency_ms']['p99']:.1f} | {run['lb_time_wait']} | {errors}"
            )
        lines.append(f"| {number + 1} | " + " | ".join(cells) + " |")
    lines.append("")
    for key in keys:
        rates = [run["requests_per_s"] for run in setups[key]["runs"]]
        worst = min(range(len(rates)), key=rates.__getitem__)
        against_first = f"{rates[worst] / rates[0]:.2f} of slice 1" if rates[0] > 0 else "slice 1 answered nothing"
        lines.append(
            f"- {key}: slowest slice {worst + 1} at {rates[worst]:.0f} req/s, "
            f"{against_first} ({rates[0]:.0f} req/s); "
            f"most TIME_WAIT sockets on the LB: {max(run['lb_time_wait'] for run in setups[key]['runs'])}"
        )
    return lines


def _load_lines(report: dict) -> list[str]:
    """The load line of the header, the load table and the CPU table."""
    meta, load = report["meta"], report["load"]
    lines = [
        f"- Load: `wrk -t{load['threads']} -c{load['connections']} -d{load['seconds']}s` per run, "
        + (
            f"{load['measured_rounds']} consecutive slices per phase, phases in turn ({', '.join(report['setups'])}); "
            if report.get("soak")
            else f"setups interleaved ({' '.join(report['setups'])} per round), {load['warmup_rounds']} warm-up "
            f"round(s) of {load['warmup_seconds']}s, {load['measured_rounds']} measured round(s); "
        )
        + f"wrk {meta['wrk_version']}; "
        f"wrk's net.ipv4.tcp_tw_reuse: {meta.get('tcp_tw_reuse', 'not recorded')}",
        "",
        "## Load",
        "",
        *load_table(report["setups"], report["summary"], report.get("baseline")),
        "",
    ]
    cpu = cpu_table(report["setups"], report["summary"])
    if cpu:
        lines += [
            "## CPU time per request",
            "",
            "Each container's CPU time over a run (its cgroup), divided by the requests of that run. "
            "Every setup shares the same cores, so requests/s follows from these figures.",
            "",
            *cpu,
            "",
        ]
    return lines


def lever_table(deploys: dict, levers: dict) -> list[str]:
    """Each lever's re-runs against ansible.cfg's own, pairing the re-runs of the same round."""
    baseline = deploys[levers["ansible.cfg"]["label"]]
    lines = [
        "| Re-run with | Environment | Seconds median (min-max) | vs ansible.cfg's, per round median (min-max) |",
        "|---|---|---|---|",
    ]
    for name, lever in levers.items():
        runs = deploys[lever["label"]]
        ratios = spread([run["seconds"] / base["seconds"] for run, base in zip(runs, baseline, strict=True)])
        seconds = spread([run["seconds"] for run in runs])
        environment = " ".join(f"`{setting}`" for setting in lever["environment"]) or "(none)"
        lines.append(f"| {name} | {environment} | {_cell(seconds, 1)} | {_cell(ratios, 2)} |")
    return lines


def markdown(report: dict) -> str:
    meta = report["meta"]
    lines = [
        f"# Benchmark: {report['title']}",
        "",
        f"- Verdict: **{'VALID' if report['valid'] else 'INVALID'}**"
        + ("" if report["valid"] else " - " + "; ".join(report["invalid_reasons"])),
        f"- Date: {meta['date']}",
        f"- Machine: {meta['cores']} cores ({meta['cpu_model']}), {meta['memory_gib']} GiB memory, "
        f"kernel {meta['kernel']}; load average at start {meta['load_average_at_start']}, "
        f"at end {meta.get('load_average_at_end', '?')}; {meta['other_containers']} other containers running",
        f"- Command: `{meta['command']}` ({meta['duration_s']:.0f}s in all)",
        "- Backends: "
        + (
            "each of B's and C's pinned to one CPU (docker --cpuset-cpus); load balancers, A, E and wrk on any"
            if meta.get("backends_pinned")
            else "every container on any CPU"
        ),
    ]
    lines += _load_lines(report) if report["setups"] else [""]
    if report.get("levers"):
        rounds = report["lever_rounds"]
        lines += [
            "## Re-runs with each ansible.cfg speed-up undone (idempotent site.yml, this machine)",
            "",
            f"{rounds['warmup']} warm-up and {rounds['measured']} measured round(s); every round runs each "
            "setting once, starting with a different one each round.",
            "",
            *lever_table(report["deploys"], report["levers"]),
            "",
        ]
    if report.get("soak"):
        soak = report["soak"]
        lines += [
            f"## Slices ({soak['sysctl']}: {soak['kernel_default']} is the kernel's default in a new network "
            f"namespace, {soak['role_value']} is nginx_lb_sysctl's)",
            "",
            *soak_table(report["setups"]),
            "",
        ]
    if report.get("rollouts"):
        lines += [
            "## Rollouts (playbooks/rolling_update.yml under paced load, this machine)",
            "",
            "Seconds. Drain: the load balancers' rotation and the backend's refusal; restart: the old workers finish "
            "their requests and the new ones are ready; health: until the health check passed; undrain: back in "
            "rotation, with the wait for the load balancers to send again; other: Ansible's own time in the batch.",
            "",
            *rollout_table(report["rollouts"]),
            "",
            "Staging's tasks of 1 s or more (seconds, the hosts in parallel):",
            "",
            *[f"- {label}: " + "; ".join(f"{task} {seconds}" for task, seconds in
                                         measured["timings"].get("staging_tasks", {}).items())
              for label, measured in report["rollouts"].items()],
            "",
        ]
    for key, title in (("targets", "Targets (ratios of medians from this run)"), ("rollout_targets", "Targets")):
        if report.get(key):
            lines += [f"## {title}", "", *target_table(report[key]), ""]
    scale = report.get("recipe_scale")
    if scale:
        lines += [
            f"For scale: the original recipe (B) served {scale['figure']:.2f} x the sample's (A) requests/s in this "
            f"run ({scale['detail']}), so C >= 2.5 x A asks C for {scale['c_needs_x_b']:.2f} x B's.",
            "",
        ]
    if report.get("variant_targets"):
        lines += [
            "## Targets with each variant as C (ratios of medians from this run)",
            "",
            *variant_target_table(report["variant_targets"]),
            "",
        ]
    if report.get("deploys"):
        lines += ["## Deploy timings (site.yml wall time, this machine)", "", *deploy_table(report["deploys"]), ""]
    if report.get("variants"):
        lines += ["## Variants (extra vars passed to site.yml)", ""]
        lines += [f"- {key}: `{' '.join(args) or '(role defaults)'}`" for key, args in report["variants"].items()]
        lines.append("")
    return "\n".join(lines)


def write_outputs(report: dict, results_dir: Path, chart: bool) -> list[Path]:
    written = [results_dir / "report.json", results_dir / "report.md"]
    written[0].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    written[1].write_text(markdown(report), encoding="utf-8")
    if chart:
        written.append(write_chart(report, results_dir / "report.png"))
    return written


def write_chart(report: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display on the machines that run this
    import matplotlib.pyplot as plt

    keys = list(report["setups"])
    summary = report["summary"]
    figure, (throughput, latency) = plt.subplots(1, 2, figsize=(11, 4.5))
    for axis, metric, label in (
        (throughput, "requests_per_s", "requests/s (higher is better)"),
        (latency, "p99_ms", "p99 latency, ms (lower is better)"),
    ):
        medians = [summary[key][metric]["median"] for key in keys]
        below = [summary[key][metric]["median"] - summary[key][metric]["min"] for key in keys]
        above = [summary[key][metric]["max"] - summary[key][metric]["median"] for key in keys]
        axis.bar(keys, medians, yerr=[below, above], capsize=4, color="#4c72b0")
        axis.set_title(label)
        # Log scale only when the setups are orders of magnitude apart (the ceiling, E).
        if max(medians) > 10 * min(medians):
            axis.set_yscale("log")
        if any(len(key) > 3 for key in keys):
            axis.tick_params(axis="x", labelrotation=25)
        for position, value in enumerate(medians):
            axis.annotate(
                f"{value:.0f}" if metric == "requests_per_s" else f"{value:.1f}",
                (position, value),
                ha="center",
                va="bottom",
                fontsize=8,
            )
    figure.suptitle(
        f"{report['title']} - median of {report['load']['measured_rounds']} runs, bars min-max "
        f"({report['meta']['date']})",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
