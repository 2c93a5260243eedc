"""Setups A, B and E: the published sample, its recipe, and the nginx ceiling.

They run from one image built on top of the project's systemd base image
(bench/original/Dockerfile), each container running the recipe's own
foreground command. They join the bench lab's network but carry their own
label, so playbooks/lab.yml never mistakes them for lab hosts.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from cpu import backend_cpuset
from shell import PROJECT_ROOT, StepFailed, info, run, run_logged

IMAGE = "hello-service/bench-original:bookworm"
BASE_IMAGE = "hello-service/debian-systemd:bookworm"
SOURCE_DIR = PROJECT_ROOT / "bench" / "original"
# Label on every container started here; teardown finds them by it.
LABEL = "hello-service.bench"
# Label recording which inputs built the image, so a changed input rebuilds it.
INPUTS_LABEL = "hello-service.bench.inputs"

# Name, network alias, command and port of each container. The commands are
# the recipe's, verbatim; nginx stays in the foreground as a container needs.
SAMPLE_PORT = 9090
RECIPE_BACKEND_PORT = 8080
NGINX_FOREGROUND = "exec nginx -g 'daemon off;'"
CONTAINERS = {
    "original-a": {"aliases": [], "command": ["python3", "app.py"]},
    "original-b1": {"aliases": ["b1"], "command": ["gunicorn", "-w", "4", "-b", "0.0.0.0:8080", "app:app"]},
    "original-b2": {"aliases": ["b2"], "command": ["gunicorn", "-w", "4", "-b", "0.0.0.0:8080", "app:app"]},
    "original-lb": {
        "aliases": [],
        "command": ["sh", "-c", f"cp /etc/nginx/bench/nginx-recipe.conf /etc/nginx/conf.d/ && {NGINX_FOREGROUND}"],
    },
    "ceiling": {
        "aliases": [],
        "command": ["sh", "-c", f"cp /etc/nginx/bench/nginx-ceiling.conf /etc/nginx/conf.d/ && {NGINX_FOREGROUND}"],
    },
}


def _inputs_digest() -> str:
    digest = hashlib.sha256()
    digest.update(run(["docker", "image", "inspect", "-f", "{{.Id}}", BASE_IMAGE]).stdout.encode())
    for path in sorted(SOURCE_DIR.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def ensure_image(log_dir: Path) -> None:
    """Build the image unless one built from the same inputs exists."""
    digest = _inputs_digest()
    existing = run(
        ["docker", "image", "inspect", "-f", f'{{{{index .Config.Labels "{INPUTS_LABEL}"}}}}', IMAGE], check=False
    )
    if existing.returncode == 0 and existing.stdout.strip() == digest:
        info(f"{IMAGE} is up to date ({digest})")
        return
    context = PROJECT_ROOT / ".cache" / "bench" / "original-image"
    shutil.rmtree(context, ignore_errors=True)
    shutil.copytree(SOURCE_DIR, context)
    # Resolved on this machine, which can reach the package index; the
    # containers cannot (see PLATFORM.md), so they get wheels.
    run_logged(
        "original-wheelhouse",
        [
            str(PROJECT_ROOT / ".venv" / "bin" / "pip"),
            "download",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "--dest",
            str(context / "wheelhouse"),
            "--requirement",
            str(SOURCE_DIR / "requirements.txt"),
        ],
        log_dir,
        timeout=300,
    )
    run_logged(
        "original-image",
        [
            "docker",
            "build",
            "--build-arg",
            f"BASE_IMAGE={BASE_IMAGE}",
            "--label",
            f"{INPUTS_LABEL}={digest}",
            "--tag",
            IMAGE,
            str(context),
        ],
        log_dir,
        timeout=600,
    )


def container_name(name: str) -> str:
    return f"hello-bench-{name}"


# The setups these containers make: what each is, the container that takes the
# load and on which port, and the containers of each part (for bench/cpu.py).
SETUPS = {
    "A": {
        "title": "original app.py, Flask dev server (debug on), 1 container",
        "entry": ("original-a", SAMPLE_PORT),
        "parts": {"app": ["original-a"]},
    },
    "B": {
        "title": "original recipe: nginx (plain) + 2 x gunicorn -w 4",
        "entry": ("original-lb", 80),
        "parts": {"load balancer": ["original-lb"], "backends": ["original-b1", "original-b2"]},
    },
    "E": {
        "title": "nginx returns the JSON itself (ceiling)",
        "entry": ("ceiling", 80),
        "parts": {"load balancer": ["ceiling"]},
    },
}


def url(setup: str, network: str, path: str) -> str:
    name, port = SETUPS[setup]["entry"]
    return f"http://{address(name, network)}:{port}{path}"


def cpu_parts(setup: str) -> dict[str, list[str]]:
    return {part: [container_name(name) for name in names] for part, names in SETUPS[setup]["parts"].items()}


def start(network: str, owner: str, setups: tuple[str, ...] = tuple(SETUPS), pin_backends: bool = False) -> None:
    """Start the containers of SETUPS on NETWORK, labelled with OWNER (the bench lab's network).

    PIN_BACKENDS puts each of B's backends on one CPU, as C's are pinned.
    """
    wanted = {name for key in setups for names in SETUPS[key]["parts"].values() for name in names}
    names = [name for name in CONTAINERS if name in wanted]
    backends = SETUPS["B"]["parts"]["backends"]
    for name in names:
        spec = CONTAINERS[name]
        argv = [
            "docker",
            "run",
            "--detach",
            "--name",
            container_name(name),
            "--network",
            network,
            "--label",
            f"{LABEL}={owner}",
        ]
        for alias in spec["aliases"]:
            argv += ["--network-alias", alias]
        if pin_backends and name in backends:
            argv += ["--cpuset-cpus", backend_cpuset(backends.index(name) + 1)]
        run(argv + [IMAGE, *spec["command"]])
    info(f"started {', '.join(container_name(name) for name in names)}")


def address(name: str, network: str) -> str:
    result = run(
        [
            "docker",
            "inspect",
            "-f",
            f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}',
            container_name(name),
        ]
    )
    if not result.stdout.strip():
        raise StepFailed(f"container {container_name(name)} has no address on {network}")
    return result.stdout.strip()


def remove(owner: str) -> None:
    """Remove the containers started for OWNER (also ones left by an earlier, killed run)."""
    ids = run(["docker", "ps", "--all", "--quiet", "--filter", f"label={LABEL}={owner}"], check=False).stdout.split()
    if ids:
        run(["docker", "rm", "--force", *ids], timeout=120)
