"""CPU time spent per request, per container: where a setup's requests/s go.

On this machine every setup shares the same cores with the load generator,
so requests/s is CPU per request in disguise. Measuring each container's CPU
time over a wrk run (from its cgroup) shows which part of a setup costs what,
and so what ratio between two setups is possible at all.
"""

from __future__ import annotations

import resource
from pathlib import Path

from shell import run

CGROUP_ROOT = Path("/sys/fs/cgroup")


def backend_cpuset(number: int) -> str:
    """The CPU that backend NUMBER (1, 2, ...) is pinned to: the engine's CPUs in turn.

    The same rule as playbooks/lab.yml's lab_pin_backends, so that B's
    backends and C's are measured on the same footing: a backend with a CPU
    of its own, as on a server, while the load balancers and wrk run where
    there is room.
    """
    engine_cpus = int(run(["docker", "info", "--format", "{{.NCPU}}"]).stdout.strip())
    return str((number - 1) % engine_cpus)


def _cgroup_usage_file(container: str) -> Path:
    """The file holding the container's cumulative CPU time, cgroup v1 or v2."""
    inspected = run(["docker", "inspect", "--format", "{{.Id}} {{.State.Pid}}", container]).stdout.split()
    container_id, pid = inspected[0], inspected[1]
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        # The container's own cgroup (/docker/<id> or /system.slice/docker-<id>.scope):
        # its init may sit in a child of it (systemd's init.scope).
        segments = path.split("/")
        owning = [number for number, segment in enumerate(segments) if container_id in segment]
        path = "/".join(segments[: owning[0] + 1]) if owning else path
        if "cpuacct" in controllers.split(","):
            return CGROUP_ROOT / "cpuacct" / path.lstrip("/") / "cpuacct.usage"
        if controllers == "" and (CGROUP_ROOT / "cgroup.controllers").exists():
            return CGROUP_ROOT / path.lstrip("/") / "cpu.stat"
    raise RuntimeError(f"no CPU accounting cgroup found for container {container}")


def _read_seconds(usage_file: Path) -> float:
    text = usage_file.read_text()
    if usage_file.name == "cpuacct.usage":
        return int(text) / 1e9
    fields = dict(line.split() for line in text.splitlines())
    return int(fields["usage_usec"]) / 1e6


def _children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU seconds used by named containers (and by this process's children, i.e. wrk) over a span."""

    def __init__(self, containers: list[str]) -> None:
        self.files = {container: _cgroup_usage_file(container) for container in containers}

    def snapshot(self) -> dict[str, float]:
        figures = {container: _read_seconds(path) for container, path in self.files.items()}
        figures["wrk"] = _children_seconds()
        return figures

    @staticmethod
    def per_request_us(before: dict[str, float], after: dict[str, float], requests: int) -> dict[str, float]:
        """Microseconds of CPU per request, per container, over the span between two snapshots."""
        return {name: round((after[name] - before[name]) / max(requests, 1) * 1e6, 1) for name in before}
