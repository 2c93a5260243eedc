"""Load with wrk and the correctness probe run before and after it."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from shell import PROJECT_ROOT, StepFailed, info

EXPECTED_BODY = {"message": "Hello Flask.!!"}
PATH = "/requestme"
WRK_SCRIPT = PROJECT_ROOT / "bench" / "wrk_summary.lua"
# Per network namespace: this one is the controller's, where wrk runs.
TCP_TW_REUSE = Path("/proc/sys/net/ipv4/tcp_tw_reuse")


@contextlib.contextmanager
def client_ports_reusable() -> Iterator[str]:
    """Let wrk's connections reuse its own TIME_WAIT ports while the benchmark runs.

    Against a server that closes every connection (A's development server,
    D's sync workers) wrk reconnects for every request and, closing first,
    leaves each local port in TIME_WAIT for 60 s. At thousands of requests/s
    the 28k ports of the default range run out in seconds, and every
    connect() then spends milliseconds of kernel time looking for a free
    one: in four back-to-back 10 s runs against D, 1473, 709, 443 and 428
    req/s, wrk using 1.6 s of CPU per second. The load generator, not the
    setup, was being measured. tcp_tw_reuse=1 lets an outgoing connection
    take over a TIME_WAIT port when TCP timestamps show it is safe; Linux's
    default, 2, allows that on loopback only. The previous value comes back
    afterwards. Yields what the report should say about the setting.
    """
    try:
        previous = TCP_TW_REUSE.read_text().strip()
    except OSError as error:
        previous, problem = None, f"unknown ({error.strerror})"
    else:
        problem = None
        if previous != "1":
            try:
                TCP_TW_REUSE.write_text("1")
            except OSError as error:
                problem = f"{previous} (setting 1 failed: {error.strerror}; A and D are limited by wrk's local ports)"
                info(
                    f"WARNING: cannot set net.ipv4.tcp_tw_reuse=1 ({error.strerror}); A and D, whose servers "
                    "close every connection, will be limited by wrk's local ports, not by the setup"
                )
    if problem or previous == "1":
        yield problem or "1"
        return
    info(f"net.ipv4.tcp_tw_reuse set to 1 for the run (was {previous}; restored afterwards)")
    try:
        yield f"1 for the run (was {previous}, restored afterwards)"
    finally:
        try:
            TCP_TW_REUSE.write_text(previous)
        except OSError as error:
            info(f"WARNING: could not restore net.ipv4.tcp_tw_reuse={previous}: {error.strerror}")


@dataclass(frozen=True)
class Load:
    threads: int
    connections: int
    seconds: int


def probe(url: str, requests: int = 5, timeout: float = 3) -> None:
    """Ask URL a few times; each answer must be 200 with the service's exact JSON.

    wrk only counts 4xx/5xx as errors, so this is what catches a setup that
    answers fast with the wrong thing (a redirect, a default page).
    """
    for _ in range(requests):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (own containers only)
                status, body = response.status, response.read()
        except (urllib.error.URLError, OSError) as error:
            raise StepFailed(f"{url}: {error}") from None
        if status != 200 or json.loads(body) != EXPECTED_BODY:
            raise StepFailed(f"{url}: expected 200 {EXPECTED_BODY}, got {status} {body[:200]!r}")


def wait_until_serving(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            probe(url, requests=1, timeout=2)
            return
        except StepFailed as error:
            if time.monotonic() > deadline:
                raise StepFailed(f"not serving after {timeout:.0f}s: {error}") from None
            time.sleep(0.5)


def run_wrk(url: str, load: Load) -> dict:
    """One wrk run against URL; returns requests/s, latency percentiles (ms) and error counts."""
    argv = [
        "wrk",
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{load.seconds}s",
        "--timeout",
        "2s",
        "-s",
        str(WRK_SCRIPT),
        url,
    ]
    try:
        # Bounded twice: wrk stops itself after -d, and this kills it if it does not.
        result = subprocess.run(argv, capture_output=True, text=True, timeout=load.seconds + 30)
    except subprocess.TimeoutExpired:
        raise StepFailed(f"wrk against {url} did not finish within {load.seconds + 30}s") from None
    summary_lines = [line for line in result.stdout.splitlines() if line.startswith("BENCH_SUMMARY ")]
    if result.returncode != 0 or not summary_lines:
        raise StepFailed(f"wrk against {url} failed (exit {result.returncode}): {result.stderr.strip()[-500:]}")
    summary = json.loads(summary_lines[-1].removeprefix("BENCH_SUMMARY "))
    errors = summary["errors"]
    return {
        "requests": summary["requests"],
        "requests_per_s": round(summary["requests"] / (summary["duration_us"] / 1e6), 1),
        "latency_ms": {key: round(value / 1000, 3) for key, value in summary["latency_us"].items()},
        # wrk's "status" errors are its "Non-2xx or 3xx responses" (4xx and 5xx).
        "non_2xx": errors["status"],
        "socket_errors": {key: errors[key] for key in ("connect", "read", "write", "timeout")},
    }


def is_clean(result: dict) -> bool:
    return result["non_2xx"] == 0 and not any(result["socket_errors"].values())
