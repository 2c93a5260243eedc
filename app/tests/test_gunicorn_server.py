"""A real Gunicorn, started with the deploy role's gunicorn.conf.py, on loopback only.

The scenario proves what the deployment relies on: a SIGHUP re-reads the
settings file and new workers serve the new settings, without a restart.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

# The app is deployed with the role's configuration; this test runs the two together.
GUNICORN_CONFIG = pathlib.Path(__file__).resolve().parents[2] / "roles" / "flask_app" / "files" / "gunicorn.conf.py"
STARTUP_SECONDS = 30
RELOAD_SECONDS = 30


def _free_loopback_port():
    # Gunicorn cannot report the port it got for :0, so find a free one first.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get_json(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.headers.get("Content-Type"), json.loads(response.read())


class GunicornProcess:
    def __init__(self, process, base_url, log_path):
        self.process = process
        self.base_url = base_url
        self.log_path = log_path

    def log(self):
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_until(self, predicate, seconds, what):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"gunicorn exited with {self.process.returncode} while waiting for {what}:\n{self.log()}")
            try:
                if predicate():
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        pytest.fail(f"timed out after {seconds}s waiting for {what}:\n{self.log()}")

    def release(self):
        return _get_json(self.base_url + "/healthz")[2]["release"]


@pytest.fixture
def settings_path(tmp_path):
    return tmp_path / "hello-service.env"


@pytest.fixture
def extra_settings():
    """More settings file lines; a test overrides this with parametrize."""
    return ""


@pytest.fixture
def workers():
    """Gunicorn's workers; a test overrides this with parametrize."""
    return 1


@pytest.fixture
def gunicorn(app_dir, tmp_path, settings_path, extra_settings, workers):
    port = _free_loopback_port()
    settings_path.write_text(
        "# as the role would template it\n"
        f"GUNICORN_BIND=127.0.0.1:{port}\n"
        f"GUNICORN_WORKERS={workers}\n"
        "GUNICORN_GRACEFUL_TIMEOUT=5\n"
        "HELLO_SERVICE_RELEASE_ID=release-1\n" + extra_settings.replace("{tmp}", str(tmp_path)),
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HELLO_SERVICE_", "GUNICORN_"))}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(app_dir / "src"), env.get("PYTHONPATH")])),
        GUNICORN_SETTINGS_FILE=str(settings_path),
        # What systemd's Environment= would hold; the file overrides it.
        HELLO_SERVICE_RELEASE_ID="release-from-environment",
    )
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "w", encoding="utf-8") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONFIG), "hello_service.wsgi:app"],
            env=env,
            cwd=tmp_path,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = GunicornProcess(process, f"http://127.0.0.1:{port}", log_path)
    try:
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_serves_and_applies_settings_file_changes_on_hup(gunicorn, settings_path):
    gunicorn.wait_until(lambda: gunicorn.release() == "release-1", STARTUP_SECONDS, "first answer")

    status, content_type, body = _get_json(gunicorn.base_url + "/requestme")
    assert (status, content_type, body) == (200, "application/json", {"message": "Hello Flask.!!"})

    status, _, body = _get_json(gunicorn.base_url + "/healthz")
    assert (status, body) == (200, {"status": "ok", "release": "release-1"})

    settings_path.write_text(
        settings_path.read_text(encoding="utf-8").replace("release-1", "release-2"), encoding="utf-8"
    )
    gunicorn.process.send_signal(signal.SIGHUP)
    gunicorn.wait_until(lambda: gunicorn.release() == "release-2", RELOAD_SECONDS, "release-2 after HUP")

    # A key removed from the file falls back to the environment, not to the
    # value an earlier version of the file exported.
    settings_path.write_text(
        "".join(
            line
            for line in settings_path.read_text(encoding="utf-8").splitlines(keepends=True)
            if not line.startswith("HELLO_SERVICE_RELEASE_ID=")
        ),
        encoding="utf-8",
    )
    gunicorn.process.send_signal(signal.SIGHUP)
    gunicorn.wait_until(
        lambda: gunicorn.release() == "release-from-environment", RELOAD_SECONDS, "environment release after HUP"
    )

    gunicorn.process.send_signal(signal.SIGTERM)
    assert gunicorn.process.wait(timeout=30) == 0, gunicorn.log()


SECRET = "gunicorn-test-secret-0123456789abcdef"


@pytest.mark.parametrize(
    "extra_settings", [f"GUNICORN_LOG_LEVEL=debug\nGUNICORN_SECRET_NAMES=HELLO_SERVICE_SECRET_KEY\nHELLO_SERVICE_SECRET_KEY={SECRET}\n"], ids=["debug"]
)
def test_secret_key_is_not_in_the_debug_log(gunicorn):
    # At debug level the master logs its configuration, raw_env included.
    gunicorn.wait_until(lambda: gunicorn.release() == "release-1", STARTUP_SECONDS, "first answer")
    gunicorn.process.send_signal(signal.SIGTERM)
    gunicorn.process.wait(timeout=30)
    log = gunicorn.log()
    assert "Current configuration" in log
    assert "HELLO_SERVICE_SECRET_KEY=<redacted>" in log
    assert SECRET not in log


# --- Metrics (the role's gunicorn.conf.py hooks, prometheus_client's multiprocess mode) ---

METRICS_PORT = _free_loopback_port()


def _metrics(port=METRICS_PORT):
    """Every sample of the metrics listener, {(name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _requests(samples, endpoint, status="200", method="GET"):
    labels = tuple(sorted({"endpoint": endpoint, "method": method, "status": status}.items()))
    return samples.get(("flask_app_requests_total", labels), 0), \
        samples.get(("flask_app_request_duration_seconds_count", labels), 0)


def _recorded(endpoint, expected, status="200", seconds=5):
    """ENDPOINT's (count, histogram count) once they reach EXPECTED, or after SECONDS: a worker records a
    request when its answer closes, after the client has read it, and the exporter reads the counter and
    the histogram one after the other. A count above EXPECTED stays above it and is returned as it is."""
    deadline = time.monotonic() + seconds
    counts = _requests(_metrics(), endpoint, status)
    while counts != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        counts = _requests(_metrics(), endpoint, status)
    return counts


def _worker_pids(gunicorn):
    children = pathlib.Path(f"/proc/{gunicorn.process.pid}/task/{gunicorn.process.pid}/children")
    return set(children.read_text().split())


@pytest.fixture
def stale_metrics(tmp_path):
    """A file an earlier start of the service left: no part of this start's counts."""
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "counter_1.db").write_bytes(b"stale")


@pytest.mark.parametrize("workers", [2])
@pytest.mark.parametrize(
    "extra_settings",
    [f"GUNICORN_MAX_REQUESTS=7\nGUNICORN_MAX_REQUESTS_JITTER=0\nGUNICORN_METRICS_BIND=127.0.0.1:{METRICS_PORT}\n"
     "GUNICORN_METRICS_DIR={tmp}/metrics\n"],
    ids=["metrics"],
)
def test_request_counts_add_up_across_workers_recycling_and_hup(stale_metrics, gunicorn):
    gunicorn.wait_until(lambda: _metrics() is not None, STARTUP_SECONDS, "the metrics listener")
    assert _requests(_metrics(), "service.hello") == (0, 0)

    # Workers are recycled every 7 requests: 50 requests span several worker lifetimes.
    for _ in range(50):
        assert _get_json(gunicorn.base_url + "/requestme")[0] == 200
    for _ in range(5):
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(gunicorn.base_url + "/no-such-page", timeout=5)
    assert _recorded("service.hello", (50, 50)) == (50, 50)
    assert _recorded("<unmatched>", (5, 5), status="404") == (5, 5)

    before = _worker_pids(gunicorn)
    gunicorn.process.send_signal(signal.SIGHUP)
    gunicorn.wait_until(lambda: not before & _worker_pids(gunicorn) and len(_worker_pids(gunicorn)) == 2,
                        RELOAD_SECONDS, "new workers after HUP")
    for _ in range(20):
        assert _get_json(gunicorn.base_url + "/requestme")[0] == 200
    assert _recorded("service.hello", (70, 70)) == (70, 70)

    # The public listener does not serve them.
    with pytest.raises(urllib.error.HTTPError) as not_found:
        urllib.request.urlopen(gunicorn.base_url + "/metrics", timeout=5)
    assert not_found.value.code == 404


@pytest.mark.parametrize(
    "extra_settings",
    [f"GUNICORN_METRICS_BIND=127.0.0.1:{METRICS_PORT}\nGUNICORN_METRICS_ALLOW=192.0.2.1,10.0.0.0/8\n"
     "GUNICORN_METRICS_DIR={tmp}/metrics\n"],
    ids=["metrics-elsewhere"],
)
def test_metrics_are_refused_to_an_address_not_allowed(gunicorn):
    gunicorn.wait_until(lambda: gunicorn.release() == "release-1", STARTUP_SECONDS, "first answer")
    with pytest.raises(urllib.error.HTTPError) as refused:
        _metrics()
    assert refused.value.code == 403
