"""gunicorn.conf.py evaluated the way Gunicorn does: as a fresh module.

Each evaluation runs in a subprocess because the file writes to os.environ,
which must not leak between tests.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = ROOT / "roles" / "flask_app" / "files" / "gunicorn.conf.py"
ENV_PREFIXES = ("GUNICORN_", "MY_APP_")

GUNICORN_SETTINGS = (
    "bind",
    "workers",
    "worker_class",
    "threads",
    "timeout",
    "graceful_timeout",
    "keepalive",
    "max_requests",
    "max_requests_jitter",
    "forwarded_allow_ips",
    "accesslog",
    "access_log_format",
    "errorlog",
    "loglevel",
    "proc_name",
    "preload_app",
    "worker_tmp_dir",
    "raw_env",
    "control_socket_disable",
    "_secrets",
)

_EVALUATE = """
import json, os, runpy, sys
namespace = runpy.run_path(sys.argv[1])
print(json.dumps({
    "settings": {name: namespace.get(name) for name in sys.argv[2:]},
    "cpu_count": len(os.sched_getaffinity(0)),
    "environ": {k: v for k, v in os.environ.items() if k.startswith(("GUNICORN_", "MY_APP_"))},
    "prometheus_dir": os.environ.get("PROMETHEUS_MULTIPROC_DIR"),
}))
"""


class Evaluation:
    def __init__(self, completed):
        self.returncode = completed.returncode
        self.stderr = completed.stderr
        self.output = json.loads(completed.stdout) if completed.returncode == 0 else None

    @property
    def settings(self):
        return self.output["settings"]

    @property
    def environ(self):
        return self.output["environ"]


@pytest.fixture
def evaluate():
    """Evaluate gunicorn.conf.py with exactly the given GUNICORN_* and MY_APP_* variables."""

    def run(cpus=None, **variables):
        """CPUS: run on the first CPUS of this process's CPUs, as a pinned service would."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIXES)}
        env.update(variables)
        allowed = sorted(os.sched_getaffinity(0))[:cpus] if cpus else None
        completed = subprocess.run(
            [sys.executable, "-c", _EVALUATE, str(CONFIG), *GUNICORN_SETTINGS],
            env=env,
            preexec_fn=(lambda: os.sched_setaffinity(0, allowed)) if allowed else None,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return Evaluation(completed)

    return run


@pytest.fixture
def settings_file(tmp_path):
    """Write a settings file with the given lines and return its path."""
    path = tmp_path / "settings.env"

    def write(*lines):
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return str(path)

    return write


needs_two_cpus = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs to run on")


@needs_two_cpus
def test_defaults_on_two_cpus(evaluate):
    evaluation = evaluate(cpus=2)
    assert evaluation.output["cpu_count"] == 2
    assert evaluation.settings | {"access_log_format": None, "worker_tmp_dir": None} == {
        "bind": ["0.0.0.0:8080"],
        "workers": 5,
        "worker_class": "sync",
        "threads": 1,
        "timeout": 30,
        "graceful_timeout": 20,
        "keepalive": 75,
        "max_requests": 10000,
        "max_requests_jitter": 1000,
        "forwarded_allow_ips": "127.0.0.1",
        "accesslog": None,
        "access_log_format": None,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": None,
        "preload_app": False,
        "worker_tmp_dir": None,
        "raw_env": [],
        "control_socket_disable": True,
        "_secrets": [],
    }


def test_one_cpu_runs_one_gthread_worker_with_two_threads_and_no_recycling(evaluate):
    evaluation = evaluate(cpus=1)
    assert evaluation.output["cpu_count"] == 1
    settings = evaluation.settings
    assert (settings["worker_class"], settings["workers"], settings["threads"]) == ("gthread", 1, 2)
    assert (settings["max_requests"], settings["max_requests_jitter"]) == (0, 0)


def test_one_cpu_ignores_the_recycling_meant_for_several_workers(evaluate):
    # The role always writes MAX_REQUESTS and its jitter; on one CPU there is one worker to recycle.
    settings = evaluate(cpus=1, GUNICORN_MAX_REQUESTS="10000", GUNICORN_MAX_REQUESTS_JITTER="1000").settings
    assert (settings["workers"], settings["max_requests"], settings["max_requests_jitter"]) == (1, 0, 0)


def test_one_cpu_takes_the_threads_asked_for(evaluate):
    assert evaluate(cpus=1, GUNICORN_THREADS="4").settings["threads"] == 4


def test_one_cpu_with_several_workers_asked_for_runs_sync_workers(evaluate):
    settings = evaluate(cpus=1, GUNICORN_WORKERS="3", GUNICORN_THREADS="4").settings
    assert (settings["worker_class"], settings["workers"], settings["threads"]) == ("sync", 3, 1)
    assert settings["max_requests"] == 10000


@pytest.mark.parametrize("worker_class", ["sync", "gthread"])
def test_one_cpu_keeps_the_worker_class_asked_for_and_two_per_cpu_plus_one(evaluate, worker_class):
    settings = evaluate(cpus=1, GUNICORN_WORKER_CLASS=worker_class).settings
    assert (settings["worker_class"], settings["workers"]) == (worker_class, 3)


@needs_two_cpus
def test_one_worker_asked_for_on_two_cpus_is_a_gthread_worker(evaluate):
    settings = evaluate(cpus=2, GUNICORN_WORKERS="1").settings
    assert (settings["worker_class"], settings["workers"], settings["threads"]) == ("gthread", 1, 2)


@needs_two_cpus
def test_threads_are_unused_by_the_sync_workers_auto_picks_on_two_cpus(evaluate):
    settings = evaluate(cpus=2, GUNICORN_THREADS="4").settings
    assert (settings["worker_class"], settings["workers"], settings["threads"]) == ("sync", 5, 1)


def test_keepalive_outlasts_load_balancer_keepalive_of_60s(evaluate):
    assert evaluate().settings["keepalive"] > 60


def test_heartbeat_files_on_tmpfs_when_available(evaluate):
    expected = "/dev/shm" if os.path.isdir("/dev/shm") else None
    assert evaluate().settings["worker_tmp_dir"] == expected


def test_environment_overrides_every_setting(evaluate):
    settings = evaluate(
        GUNICORN_BIND="127.0.0.1:9000, unix:/run/hello.sock",
        GUNICORN_WORKERS="3",
        GUNICORN_WORKER_CLASS="gthread",
        GUNICORN_THREADS="4",
        GUNICORN_TIMEOUT="10",
        GUNICORN_GRACEFUL_TIMEOUT="5",
        GUNICORN_KEEPALIVE="90",
        GUNICORN_MAX_REQUESTS="500",
        GUNICORN_MAX_REQUESTS_JITTER="7",
        GUNICORN_FORWARDED_ALLOW_IPS="10.0.0.5,10.0.0.6",
        GUNICORN_ACCESS_LOG="-",
        GUNICORN_LOG_LEVEL="WARNING",
    ).settings
    assert settings["bind"] == ["127.0.0.1:9000", "unix:/run/hello.sock"]
    assert (settings["workers"], settings["worker_class"], settings["threads"]) == (3, "gthread", 4)
    assert (settings["timeout"], settings["graceful_timeout"], settings["keepalive"]) == (10, 5, 90)
    assert (settings["max_requests"], settings["max_requests_jitter"]) == (500, 7)
    assert settings["forwarded_allow_ips"] == "10.0.0.5,10.0.0.6"
    assert (settings["accesslog"], settings["loglevel"]) == ("-", "warning")


def test_jitter_defaults_to_a_tenth_of_max_requests(evaluate):
    assert evaluate(GUNICORN_MAX_REQUESTS="2000").settings["max_requests_jitter"] == 200


def test_one_worker_is_not_recycled_by_default(evaluate):
    settings = evaluate(GUNICORN_WORKERS="1").settings
    assert (settings["workers"], settings["max_requests"], settings["max_requests_jitter"]) == (1, 0, 0)


def test_recycling_the_only_worker_is_refused(evaluate):
    evaluation = evaluate(GUNICORN_WORKERS="1", GUNICORN_MAX_REQUESTS="10000")
    assert evaluation.returncode != 0
    assert "GUNICORN_MAX_REQUESTS='10000'" in evaluation.stderr
    assert "GUNICORN_WORKERS=1" in evaluation.stderr


def test_two_workers_are_recycled_by_default(evaluate):
    assert evaluate(GUNICORN_WORKERS="2").settings["max_requests"] == 10000


def test_gthread_workers_default_to_two_threads(evaluate):
    assert evaluate(GUNICORN_WORKER_CLASS="gthread").settings["threads"] == 2


def test_sync_workers_with_threads_are_refused(evaluate):
    evaluation = evaluate(GUNICORN_WORKER_CLASS="sync", GUNICORN_THREADS="4")
    assert evaluation.returncode != 0
    assert "GUNICORN_THREADS='4'" in evaluation.stderr


def test_access_log_format_is_json_with_request_id(evaluate):
    log_format = evaluate().settings["access_log_format"]
    sample = log_format % {
        "t": "[01/Jan/2024:00:00:00 +0000]",
        "{x-request-id}i": "abc",
        "h": "127.0.0.1",
        "m": "GET",
        "U": "/requestme",
        "q": "",
        "s": "200",
        "B": "29",
        "M": "3",
        "a": "curl/8",
    }
    assert json.loads(sample)["request_id"] == "abc"


@pytest.mark.parametrize(
    ("variable", "bad_value"),
    [
        ("GUNICORN_WORKERS", "0"),
        ("GUNICORN_WORKERS", "many"),
        ("GUNICORN_WORKER_CLASS", "gevent"),
        ("GUNICORN_THREADS", "0"),
        ("GUNICORN_TIMEOUT", "-5"),
        ("GUNICORN_GRACEFUL_TIMEOUT", "soon"),
        ("GUNICORN_KEEPALIVE", "1.5"),
        ("GUNICORN_MAX_REQUESTS", "-1"),
        ("GUNICORN_MAX_REQUESTS_JITTER", "x"),
        ("GUNICORN_LOG_LEVEL", "loud"),
        ("GUNICORN_BIND", " , "),
        ("GUNICORN_FORWARDED_ALLOW_IPS", " "),
        ("GUNICORN_METRICS_BIND", "9101"),
        ("GUNICORN_METRICS_BIND", "127.0.0.1:0"),
        ("GUNICORN_METRICS_ALLOW", "10.0.0.1,monitor.example"),
    ],
)
def test_invalid_environment_value_names_variable_and_value(evaluate, variable, bad_value):
    evaluation = evaluate(**{variable: bad_value})
    assert evaluation.returncode != 0
    assert f"{variable}={bad_value!r}" in evaluation.stderr


def test_settings_file_overrides_environment(evaluate, settings_file):
    path = settings_file("GUNICORN_WORKERS=4", "GUNICORN_TIMEOUT=12")
    settings = evaluate(GUNICORN_SETTINGS_FILE=path, GUNICORN_WORKERS="9").settings
    assert (settings["workers"], settings["timeout"]) == (4, 12)


def test_settings_file_ignores_comments_blank_lines_and_spaces(evaluate, settings_file):
    path = settings_file("# managed by Ansible", "", "   ", "  GUNICORN_WORKERS = 6  ")
    assert evaluate(GUNICORN_SETTINGS_FILE=path).settings["workers"] == 6


def test_settings_file_values_may_be_quoted(evaluate, settings_file):
    path = settings_file('MY_APP_RELEASE_ID="2024 05 01"', "GUNICORN_LOG_LEVEL='debug'")
    evaluation = evaluate(GUNICORN_SETTINGS_FILE=path)
    assert evaluation.environ["MY_APP_RELEASE_ID"] == "2024 05 01"
    assert evaluation.settings["loglevel"] == "debug"


def test_settings_file_app_values_reach_the_environment(evaluate, settings_file):
    path = settings_file("MY_APP_RELEASE_ID=r7", "MY_APP_PROXY_COUNT=1")
    environ = evaluate(GUNICORN_SETTINGS_FILE=path, MY_APP_RELEASE_ID="old").environ
    assert (environ["MY_APP_RELEASE_ID"], environ["MY_APP_PROXY_COUNT"]) == ("r7", "1")


def test_settings_file_values_are_passed_as_raw_env(evaluate, settings_file):
    # raw_env is what Gunicorn undoes before re-reading the file on HUP.
    path = settings_file("MY_APP_RELEASE_ID=r7", "MY_APP_DEBUG=false")
    raw_env = evaluate(GUNICORN_SETTINGS_FILE=path).settings["raw_env"]
    assert raw_env == ["MY_APP_DEBUG=false", "MY_APP_RELEASE_ID=r7"]


def test_settings_file_unknown_key_is_named(evaluate, settings_file):
    path = settings_file("GUNICORN_WORKERZ=4")
    evaluation = evaluate(GUNICORN_SETTINGS_FILE=path)
    assert evaluation.returncode != 0
    assert "unknown setting 'GUNICORN_WORKERZ'" in evaluation.stderr


def test_settings_file_cannot_name_another_settings_file(evaluate, settings_file):
    path = settings_file("GUNICORN_SETTINGS_FILE=/etc/other")
    assert "unknown setting 'GUNICORN_SETTINGS_FILE'" in evaluate(GUNICORN_SETTINGS_FILE=path).stderr


def test_settings_file_invalid_value_names_key_value_and_file(evaluate, settings_file):
    path = settings_file("GUNICORN_WORKERS=lots")
    evaluation = evaluate(GUNICORN_SETTINGS_FILE=path)
    assert evaluation.returncode != 0
    assert f"GUNICORN_WORKERS='lots' (from settings file {path})" in evaluation.stderr


def test_settings_file_line_without_equals_is_refused(evaluate, settings_file):
    path = settings_file("GUNICORN_WORKERS 4")
    assert "line 1: expected KEY=VALUE" in evaluate(GUNICORN_SETTINGS_FILE=path).stderr


def test_settings_file_duplicate_key_is_refused(evaluate, settings_file):
    path = settings_file("GUNICORN_WORKERS=4", "GUNICORN_WORKERS=5")
    assert "GUNICORN_WORKERS is set more than once" in evaluate(GUNICORN_SETTINGS_FILE=path).stderr


def test_missing_settings_file_is_an_error(evaluate, tmp_path):
    evaluation = evaluate(GUNICORN_SETTINGS_FILE=str(tmp_path / "absent.env"))
    assert evaluation.returncode != 0
    assert "cannot be read" in evaluation.stderr


SECRET = "conf-test-secret-0123456789abcdefgh"


def test_settings_file_secret_key_reaches_the_environment(evaluate, settings_file):
    path = settings_file(f"MY_APP_SECRET_KEY={SECRET}")
    assert evaluate(GUNICORN_SETTINGS_FILE=path).environ["MY_APP_SECRET_KEY"] == SECRET


def test_settings_file_secret_key_is_passed_as_raw_env(evaluate, settings_file):
    path = settings_file(f"MY_APP_SECRET_KEY={SECRET}")
    assert evaluate(GUNICORN_SETTINGS_FILE=path).settings["raw_env"] == [f"MY_APP_SECRET_KEY={SECRET}"]


def test_settings_file_malformed_secret_key_line_is_not_shown(evaluate, settings_file):
    path = settings_file(f"MY_APP_SECRET_KEY {SECRET}")
    evaluation = evaluate(GUNICORN_SETTINGS_FILE=path)
    assert evaluation.returncode != 0
    assert "line 1: expected KEY=VALUE" in evaluation.stderr
    assert SECRET not in evaluation.stderr


def test_settings_file_value_keeps_what_is_between_its_quotes(evaluate, settings_file):
    # The role quotes every app value: spaces, quotes and # inside are the value's own.
    path = settings_file('MY_APP_GREETING=" say "hi" # now "')
    assert evaluate(GUNICORN_SETTINGS_FILE=path).environ["MY_APP_GREETING"] == ' say "hi" # now '


def test_settings_file_key_that_is_no_variable_name_is_refused(evaluate, settings_file):
    evaluation = evaluate(GUNICORN_SETTINGS_FILE=settings_file("MY-APP=1"))
    assert evaluation.returncode != 0
    assert "'MY-APP' is not an environment variable name" in evaluation.stderr


def test_settings_file_cannot_pass_gunicorn_its_command_line(evaluate, settings_file):
    evaluation = evaluate(GUNICORN_SETTINGS_FILE=settings_file("GUNICORN_CMD_ARGS=--workers 9"))
    assert "unknown setting 'GUNICORN_CMD_ARGS'" in evaluation.stderr


def test_process_name_is_the_one_set(evaluate):
    assert evaluate(GUNICORN_PROC_NAME="my-service").settings["proc_name"] == "my-service"


def test_values_of_the_secrets_named_are_redacted(evaluate, settings_file):
    path = settings_file(f"MY_APP_SECRET_KEY={SECRET}", "MY_APP_DEBUG=false", "GUNICORN_SECRET_NAMES=MY_APP_SECRET_KEY")
    assert evaluate(GUNICORN_SETTINGS_FILE=path).settings["_secrets"] == [SECRET]


def test_no_secret_is_redacted_unless_named(evaluate, settings_file):
    path = settings_file(f"MY_APP_SECRET_KEY={SECRET}")
    assert evaluate(GUNICORN_SETTINGS_FILE=path).settings["_secrets"] == []


def test_metrics_need_an_absolute_directory(evaluate):
    evaluation = evaluate(GUNICORN_METRICS_BIND="127.0.0.1:9101", GUNICORN_METRICS_DIR="metrics")
    assert evaluation.returncode != 0
    assert "GUNICORN_METRICS_DIR='metrics'" in evaluation.stderr


def test_metrics_directory_reaches_prometheus_client_in_the_workers(evaluate):
    evaluation = evaluate(GUNICORN_METRICS_BIND="[::1]:9101", GUNICORN_METRICS_DIR="/run/my-app/prometheus")
    assert evaluation.returncode == 0, evaluation.stderr
    assert evaluation.output["prometheus_dir"] == "/run/my-app/prometheus"


def test_no_metrics_leave_prometheus_client_alone(evaluate):
    assert evaluate().output["prometheus_dir"] is None
