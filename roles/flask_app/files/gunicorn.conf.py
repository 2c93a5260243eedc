"""Gunicorn settings for a Flask app deployed by the flask_app role.

    gunicorn --config <release>/gunicorn.conf.py <wsgi target>

Gunicorn's settings come from GUNICORN_* environment variables. Values in
the optional file named by GUNICORN_SETTINGS_FILE (KEY=VALUE lines, ``#``
comments) override the environment. Every other key in that file is the
app's own environment variable: it is passed through to the workers.

Why the file: Gunicorn executes this module again on every SIGHUP, but the
master's environment is whatever systemd gave it at start. Reading the file
here, on every evaluation, is what lets ``systemctl reload`` (a HUP) apply a
changed setting: Gunicorn re-reads its own settings, and the file's values
are exported to the master's environment (directly and through ``raw_env``)
so the workers forked after the HUP build the app from them. A key removed
from the file falls back to the environment value on the next HUP, because
Gunicorn undoes its previous ``raw_env`` before re-reading this file.

Only the standard library is imported: importing the app (and Flask) here
would load it into the master, every worker would inherit that copy, and a
HUP could no longer bring in new application code.
"""

import logging
import os
import re

PREFIX = "GUNICORN_"
SETTINGS_FILE_VARIABLE = PREFIX + "SETTINGS_FILE"

# Gunicorn's settings, read below. Any other GUNICORN_* key in the file is a
# mistake (Gunicorn itself reads GUNICORN_CMD_ARGS and sets GUNICORN_FD).
GUNICORN_SETTING_KEYS = frozenset(
    PREFIX + name
    for name in (
        "BIND",
        "WORKERS",
        "WORKER_CLASS",
        "THREADS",
        "TIMEOUT",
        "GRACEFUL_TIMEOUT",
        "KEEPALIVE",
        "MAX_REQUESTS",
        "MAX_REQUESTS_JITTER",
        "FORWARDED_ALLOW_IPS",
        "ACCESS_LOG",
        "LOG_LEVEL",
        "PROC_NAME",
        "SECRET_NAMES",
        "METRICS_BIND",
        "METRICS_ALLOW",
        "METRICS_DIR",
    )
)
# The app's environment variables: any name a shell and systemd accept.
APP_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
WORKER_CLASSES = ("sync", "gthread")


class SettingsError(ValueError):
    """A setting has an unknown name or an unusable value."""


def _unquote(value):
    # Tolerate KEY="value" as written for shells and systemd EnvironmentFile=.
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _read_settings_file(path):
    values = {}
    try:
        with open(path, encoding="utf-8") as settings_file:
            lines = settings_file.read().splitlines()
    except OSError as error:
        raise SettingsError(f"{SETTINGS_FILE_VARIABLE}={path!r} cannot be read: {error}") from None
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        key, equals, value = text.partition("=")
        key = key.strip()
        where = f"{path}, line {number}"
        if not equals or not key:
            # The line may hold a secret's value: its text is never shown.
            raise SettingsError(f"{where}: expected KEY=VALUE, got a line of {len(text)} characters (not shown)")
        if key.startswith(PREFIX) and key not in GUNICORN_SETTING_KEYS:
            raise SettingsError(
                f"{where}: unknown setting {key!r}; Gunicorn's settings are: " + ", ".join(sorted(GUNICORN_SETTING_KEYS))
            )
        if not APP_SETTING_NAME.fullmatch(key):
            raise SettingsError(f"{where}: {key!r} is not an environment variable name (letters, digits and _)")
        if key in values:
            raise SettingsError(f"{where}: {key} is set more than once")
        values[key] = _unquote(value.strip())
    return values


def _invalid(key, value, expected):
    source = _origin.get(key, "environment")
    return SettingsError(f"{key}={value!r} (from {source}) is invalid: expected {expected}")


def _text(name, default):
    return os.environ.get(PREFIX + name, default).strip()


def _integer(name, default, minimum):
    key = PREFIX + name
    value = os.environ.get(key)
    if value is None:
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise _invalid(key, value, f"an integer >= {minimum}") from None
    if number < minimum:
        raise _invalid(key, value, f"an integer >= {minimum}")
    return number


def _choice(name, default, choices):
    key = PREFIX + name
    value = os.environ.get(key, default)
    if value.strip().lower() not in choices:
        raise _invalid(key, value, "one of " + ", ".join(choices))
    return value.strip().lower()


def _usable_cpu_count():
    # CPUs this process may run on (its affinity, which a cpuset cgroup
    # narrows), which can be fewer than the machine has. A CPU quota
    # (systemd's CPUQuota=, docker --cpus) is not counted: set WORKERS then.
    # Not every platform (or seccomp filter) offers sched_getaffinity, hence
    # the fallback.
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# --- Settings file -----------------------------------------------------------

_settings_file_path = os.environ.get(SETTINGS_FILE_VARIABLE, "").strip()
_file_values = _read_settings_file(_settings_file_path) if _settings_file_path else {}
_origin = {key: f"settings file {_settings_file_path}" for key in _file_values}

# Exported now so that this evaluation (and `--check-config`, which loads the
# app right after) sees them; raw_env makes Gunicorn undo them before the
# next HUP re-reads the file, so deleted keys do not linger.
os.environ.update(_file_values)
raw_env = [f"{key}={value}" for key, value in sorted(_file_values.items())]


class _RedactSecrets(logging.Filter):
    """Replace secret values in Gunicorn's own log lines.

    At log level debug the master logs its whole configuration, raw_env
    included, at start and on every HUP; a secret from the settings file
    would otherwise be written to the journal.
    """

    def __init__(self, secrets):
        super().__init__()
        self.secrets = secrets

    def filter(self, record):
        message = record.getMessage()
        if any(secret in message for secret in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, "<redacted>")
            record.msg, record.args = message, None
        return True


# Replaced on every evaluation (HUP), so a changed or removed secret is not
# left behind in an older filter.
_gunicorn_error_log = logging.getLogger("gunicorn.error")
for _old_filter in [f for f in _gunicorn_error_log.filters if type(f).__name__ == _RedactSecrets.__name__]:
    _gunicorn_error_log.removeFilter(_old_filter)
# The app's variables whose values are secret, by name (the role lists its
# secrets here); their values are redacted from Gunicorn's log.
_secret_names = [name.strip() for name in _text("SECRET_NAMES", "").split(",") if name.strip()]
_secrets = sorted({os.environ[name].strip() for name in _secret_names if os.environ.get(name, "").strip()})
if _secrets:
    _gunicorn_error_log.addFilter(_RedactSecrets(_secrets))

# --- Server socket -----------------------------------------------------------

bind = [address.strip() for address in _text("BIND", "0.0.0.0:8080").split(",") if address.strip()]
if not bind:
    raise _invalid(PREFIX + "BIND", os.environ[PREFIX + "BIND"], "HOST:PORT or unix:PATH")

# Gunicorn honours X-Forwarded-Proto & co. only from these addresses: the
# load balancer or the local reverse proxy, never arbitrary clients.
forwarded_allow_ips = _text("FORWARDED_ALLOW_IPS", "127.0.0.1")
if not forwarded_allow_ips:
    raise _invalid(
        PREFIX + "FORWARDED_ALLOW_IPS",
        os.environ[PREFIX + "FORWARDED_ALLOW_IPS"],
        "addresses or networks, comma separated",
    )

# --- Workers -----------------------------------------------------------------

usable_cpus = _usable_cpu_count()

# Workers: Gunicorn's rule of thumb for a CPU-light app, two per CPU plus
# one; with worker class auto on a single CPU, one.
#
# Worker class auto (the default) follows from the number of workers. Several:
# sync, as Gunicorn's design notes advise for a CPU-light app behind a
# buffering proxy. A sync worker accepts a connection only when it is free,
# so waiting requests queue once, in the listen socket, first come first
# served; the price is a new connection from the load balancer per request.
# One: gthread. A single process is still one queue per host, and its
# threads keep the load balancer's connections alive, which costs less CPU
# per request than a connection each. Several gthread processes would each
# serve every connection they accepted, so requests would queue behind one
# busy process while another idles: docs/benchmark.md measures 6 to 8 times
# sync's 99th percentile latency for that, and the one gthread
# worker at 1.4 times sync's requests/s on backends with a CPU each.
requested_worker_class = _choice("WORKER_CLASS", "auto", ("auto", *WORKER_CLASSES))
workers = _integer(
    "WORKERS", 1 if requested_worker_class == "auto" and usable_cpus == 1 else 2 * usable_cpus + 1, minimum=1
)
if requested_worker_class == "auto":
    worker_class = "gthread" if workers == 1 else "sync"
else:
    worker_class = requested_worker_class

threads = _integer("THREADS", 2 if worker_class == "gthread" else 1, minimum=1)
if worker_class == "sync" and threads > 1:
    if requested_worker_class == "sync":
        # Gunicorn would silently run gthread instead; say so rather than surprise.
        raise _invalid(PREFIX + "THREADS", str(threads), f"1 when {PREFIX}WORKER_CLASS=sync")
    # auto with several workers: THREADS is for the single gthread worker.
    threads = 1

timeout = _integer("TIMEOUT", 30, minimum=1)
graceful_timeout = _integer("GRACEFUL_TIMEOUT", 20, minimum=1)

# gthread only (a sync worker closes every connection after its response).
# Longer than the load balancer's upstream keepalive_timeout (60 s), so the
# balancer always closes an idle connection first and never sends a request
# on a connection Gunicorn is closing at that moment (a spurious 502).
keepalive = _integer("KEEPALIVE", 75, minimum=0)

# Recycle workers now and then to bound any slow memory growth; the jitter
# keeps all workers from restarting at the same moment. Recycling needs a
# second worker: Gunicorn forks the replacement only once the old worker has
# exited, and the new one imports the app before it accepts, so a lone
# worker's host answers nothing meanwhile (a p99 4.7 times as long). With
# one worker the default is 0; asking for recycling with WORKERS=1 is refused,
# and the single worker chosen for one CPU is not recycled.
max_requests = _integer("MAX_REQUESTS", 10000 if workers > 1 else 0, minimum=0)
if workers == 1 and PREFIX + "WORKERS" not in os.environ:
    # The single worker chosen for a single CPU: MAX_REQUESTS, which the
    # Ansible role always sets, is for the hosts that run several.
    max_requests = 0
if workers == 1 and max_requests > 0:
    raise _invalid(
        PREFIX + "MAX_REQUESTS",
        os.environ[PREFIX + "MAX_REQUESTS"],
        f"0 when {PREFIX}WORKERS=1: recycling the only worker leaves none to answer while its replacement starts",
    )
max_requests_jitter = _integer("MAX_REQUESTS_JITTER", max_requests // 10, minimum=0)
if max_requests == 0:
    # No recycling, nothing to spread out.
    max_requests_jitter = 0

# Not preloaded: each worker imports the app itself, so a HUP (new workers)
# picks up new application code and the settings exported above.
preload_app = False

# Heartbeat files on tmpfs: a disk-backed /tmp can stall under I/O load and
# get healthy workers killed for missing their heartbeat.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

# --- Logging -----------------------------------------------------------------

loglevel = _choice("LOG_LEVEL", "info", LOG_LEVELS)

# Gunicorn's own messages go to stderr, where journald collects them.
errorlog = "-"

# Off by default: the load balancer's access log is the request log. When
# on, the line is JSON with the X-Request-ID the request came with (the
# load balancer sets it on every request it passes), so that the request's
# line on the load balancer and on the backend can be found together for
# any app, not only those that echo the header in their answers ("-" for a
# request without one, e.g. a health check straight to the backend).
# Gunicorn does not escape values: a path or agent containing a double quote
# yields a line that is not valid JSON.
accesslog = _text("ACCESS_LOG", "") or None
access_log_format = (
    '{"time": "%(t)s", "logger": "gunicorn.access", "request_id": "%({x-request-id}i)s", '
    '"remote_addr": "%(h)s", "method": "%(m)s", "path": "%(U)s", "query": "%(q)s", '
    '"status": %(s)s, "bytes": "%(B)s", "duration_ms": %(M)s, "user_agent": "%(a)s"}'
)

# --- Process -----------------------------------------------------------------

# The service's name in `ps` (the role sets it); Gunicorn's default without it.
proc_name = _text("PROC_NAME", "") or None

# systemd supervises the service and reload is a HUP (ExecReload), so
# Gunicorn's control socket (on by default since 25.1) adds nothing but a
# socket under $HOME or $XDG_RUNTIME_DIR, which the sandbox may not allow.
control_socket_disable = True

# --- Metrics -----------------------------------------------------------------
#
# Requests counted and timed by endpoint, method and status, for any app, with
# the Prometheus client in its multiprocess mode: each worker writes its
# values to files in one directory, and the master's own listener adds them
# up for every scrape. The listener is not the app's: the public port never
# serves the metrics, and only the addresses allowed may read them.
#
# The directory is emptied when the master starts, not on a HUP: the
# counters of workers that a HUP or recycling replaced stay in the sum, so
# that they never go back; a restart starts them from zero, which Prometheus
# reads as a counter reset. The app's own prometheus_client metrics, made
# in the same mode, are served with them.
#
# prometheus_client is imported only in the hooks, so that evaluating this
# file (and --check-config) needs nothing but the standard library.

METRICS_REQUESTS = "flask_app_requests_total"
METRICS_DURATION = "flask_app_request_duration_seconds"
# Seconds; chosen around the latency alert's threshold (p99 above 0.5 s by default).
METRICS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A request no route of the app matched (404, 405), and one of an app that is
# not Flask, whose endpoints the role cannot tell.
UNMATCHED_ENDPOINT = "<unmatched>"
UNKNOWN_ENDPOINT = "<unknown>"


def _metrics_address(value):
    host, separator, port = value.rpartition(":")
    host = host.strip("[]")
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise _invalid(PREFIX + "METRICS_BIND", value, "HOST:PORT, IPv6 in brackets, or empty for no metrics")
    return host, int(port)


def _metrics_networks(value):
    import ipaddress

    networks = []
    for entry in (item.strip() for item in value.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise _invalid(PREFIX + "METRICS_ALLOW", value, "IP addresses or networks, comma separated") from None
    return networks


_metrics_bind_value = _text("METRICS_BIND", "")
metrics_address = _metrics_address(_metrics_bind_value) if _metrics_bind_value else None
metrics_allow = _metrics_networks(_text("METRICS_ALLOW", "127.0.0.1,::1"))
metrics_dir = _text("METRICS_DIR", "")
if metrics_address and not metrics_dir.startswith("/"):
    raise _invalid(PREFIX + "METRICS_DIR", metrics_dir, f"an absolute directory when {PREFIX}METRICS_BIND is set")
if metrics_address:
    # Read by prometheus_client in every worker (and the app) as it is imported.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir


def _empty_directory(path):
    import shutil

    os.makedirs(path, mode=0o750, exist_ok=True)
    for name in os.listdir(path):
        target = os.path.join(path, name)
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        else:
            os.unlink(target)


def _client_allowed(address, networks):
    import ipaddress

    try:
        client = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if client.version == 6 and client.ipv4_mapped:
        client = client.ipv4_mapped
    return any(client in network for network in networks)


def _metrics_server(address, networks):
    """An HTTP server answering GET /metrics with the sum of every process's values, to allowed clients only."""
    import socket
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            if not _client_allowed(self.client_address[0], networks):
                self._answer(403, "text/plain", b"forbidden\n")
            elif self.path.split("?", 1)[0] != "/metrics":
                self._answer(404, "text/plain", b"not found\n")
            else:
                registry = CollectorRegistry()
                multiprocess.MultiProcessCollector(registry)
                self._answer(200, CONTENT_TYPE_LATEST, generate_latest(registry))

        def _answer(self, status, content_type, body):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            # Scrapes are not requests of the app: nothing in the journal.
            pass

    host, port = address

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        daemon_threads = True

    return Server((host, port), Handler)


class RequestMetrics:
    """WSGI middleware counting and timing every request the app answers.

    The status is the one the app started its answer with (500 when it
    raised, as Gunicorn then answers); the time runs until the answer is
    sent and closed. The endpoint is the Flask route's name, never the path,
    so that the series stay few whatever paths clients ask for.
    """

    def __init__(self, app, requests, durations, url_map=None):
        self.app, self.requests, self.durations, self.url_map = app, requests, durations, url_map

    def endpoint(self, environ):
        if self.url_map is None:
            return UNKNOWN_ENDPOINT
        try:
            endpoint, _ = self.url_map.bind_to_environ(environ).match()
        except Exception:  # NotFound, MethodNotAllowed, RequestRedirect: no route answers as such
            return UNMATCHED_ENDPOINT
        return endpoint

    def record(self, environ, endpoint, status, started):
        import time

        method = environ.get("REQUEST_METHOD", "")
        self.requests.labels(endpoint, method, status).inc()
        self.durations.labels(endpoint, method, status).observe(time.perf_counter() - started)

    def __call__(self, environ, start_response):
        import time

        started = time.perf_counter()
        endpoint = self.endpoint(environ)
        status = ["500"]

        def capture(status_line, headers, exc_info=None):
            status[0] = status_line.split(" ", 1)[0]
            return start_response(status_line, headers, exc_info)

        try:
            body = self.app(environ, capture)
        except BaseException:
            self.record(environ, endpoint, "500", started)
            raise
        return _ClosingBody(body, lambda: self.record(environ, endpoint, status[0], started))


class _ClosingBody:
    """The app's answer, with a call once Gunicorn has sent and closed it (whatever happened)."""

    def __init__(self, body, on_close):
        self.body, self.on_close, self.closed = body, on_close, False

    def __iter__(self):
        return iter(self.body)

    def close(self):
        if self.closed:
            return
        self.closed = True
        try:
            if hasattr(self.body, "close"):
                self.body.close()
        finally:
            self.on_close()


def _flask_url_map(app):
    """The url_map of the Flask app behind `app`, through the usual wrappers (wsgi_app, app), or None."""
    seen = set()
    while app is not None and id(app) not in seen:
        seen.add(id(app))
        if hasattr(app, "url_map") and hasattr(app.url_map, "bind_to_environ"):
            return app.url_map
        app = getattr(app, "app", None) or getattr(app, "application", None)
    return None


def on_starting(server):
    # Once per start of the master (a HUP does not call it): last run's values go.
    if metrics_address:
        _empty_directory(metrics_dir)


def when_ready(server):
    if not metrics_address:
        return
    import threading

    metrics = _metrics_server(metrics_address, metrics_allow)
    # Kept on the arbiter, which outlives the HUPs that evaluate this file again.
    server.metrics_server = metrics
    server.log.info("Serving metrics at http://%s:%d/metrics", *metrics_address)
    threading.Thread(target=metrics.serve_forever, name="metrics", daemon=True).start()


def post_fork(server, worker):
    # A worker inherits the master's metrics socket: closed, so that the
    # port is free as soon as the master is gone, whatever its workers do.
    metrics = getattr(server, "metrics_server", None)
    if metrics is not None:
        metrics.socket.close()


def post_worker_init(worker):
    if not metrics_address:
        return
    from prometheus_client import Counter, Histogram

    labels = ("endpoint", "method", "status")
    # registry=None: the values go to this worker's files only, and the app's
    # default registry is left to the app's own metrics.
    requests = Counter(METRICS_REQUESTS, "Requests answered, by Flask endpoint, method and status.", labels,
                       registry=None)
    durations = Histogram(METRICS_DURATION, "Seconds from a request's arrival to its answer's end.", labels,
                          buckets=METRICS_BUCKETS, registry=None)
    worker.wsgi = RequestMetrics(worker.wsgi, requests, durations, _flask_url_map(worker.wsgi))


def child_exit(server, worker):
    if metrics_address:
        from prometheus_client import multiprocess

        # Its live gauges go; its counters stay in the sum.
        multiprocess.mark_process_dead(worker.pid)
