"""Running commands for the harness: progress lines, logs and time limits.

Every external command the harness runs (docker, ansible-playbook, wrk)
goes through here, so each has a log file, a time limit, and a failure that
says which step failed and shows the end of its log.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class StepFailed(RuntimeError):
    """A command the harness depends on failed; the message names its log."""


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def info(message: str) -> None:
    print(f"    {message}", flush=True)


def run(argv: list[str], *, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    """Run a short command and capture its output (docker inspect and the like)."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=PROJECT_ROOT)
    except subprocess.TimeoutExpired:
        raise StepFailed(f"{' '.join(argv)} did not finish within {timeout:.0f}s") from None
    if check and result.returncode != 0:
        raise StepFailed(f"{' '.join(argv)} failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}")
    return result


def run_logged(
    name: str, argv: list[str], log_dir: Path, *, timeout: float, env: dict | None = None
) -> tuple[float, str]:
    """Run a long step with its output in LOG_DIR/NAME.log; return (seconds, output).

    On failure the last lines of the log are printed, as scripts/lib.sh does.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    started = time.monotonic()
    with log_path.open("w", encoding="utf-8") as log:
        log.write(f"$ {' '.join(argv)}\n")
        log.flush()
        try:
            result = subprocess.run(
                argv, stdout=log, stderr=subprocess.STDOUT, text=True, timeout=timeout, cwd=PROJECT_ROOT, env=env
            )
            returncode = result.returncode
        except subprocess.TimeoutExpired:
            returncode = None
    elapsed = time.monotonic() - started
    output = log_path.read_text(encoding="utf-8", errors="replace")
    if returncode != 0:
        tail = "\n".join(output.splitlines()[-30:])
        what = f"did not finish within {timeout:.0f}s" if returncode is None else f"failed (exit {returncode})"
        raise StepFailed(f'step "{name}" {what}; last lines of {log_path}:\n{tail}\nFull log: {log_path}')
    info(f"{name}: done in {elapsed:.1f}s (log: {log_path})")
    return elapsed, output
