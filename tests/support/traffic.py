"""Unpaced client traffic, as real clients send it: kept-alive connections and new ones, GET and POST.

Each client thread sends its next request as soon as the last one is answered.
A client retries what RFC 9110 and 9112 let a client retry, and nothing else:
- a request whose connection could not be opened was never sent: it is sent
  again, whatever its method, until `give_up` seconds have passed;
- a GET (idempotent) whose connection failed before a complete answer is sent
  again on a new connection;
- a POST that was sent and got no answer is a failure: it may have run.
A "no retry" client does neither of the last two: its GET is lost as a POST is.

Every good answer's time is kept, so that a test can tell how long no answer
came at all (the gap) across an event. The times are the wall clock's, which
the containers share with this machine: `TrafficFrom` runs this file in one of
the scenario's containers (python3 traffic.py ADDRESS, stopped by a line on
its input), so that the load comes from an address of the test's choosing.
"""

import argparse
import http.client
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

# Each kind of client: (keeps its connection alive, retries as RFC 9110/9112 allow).
KINDS = {"keep-alive": (True, True), "new connection": (False, True), "keep-alive, no retry": (True, False)}
OUTCOMES = ("ok", "failed", "retried", "resent")


class NotSent(Exception):
    """The request could not be sent: no connection could be opened."""


class Client:
    """One client: a connection it keeps alive (or opens for each request)."""

    def __init__(self, address, keepalive, timeout):
        self.address, self.keepalive, self.timeout = address, keepalive, timeout
        self.connection = None

    def _open(self):
        host, _, port = self.address.rpartition(":")
        # A host that does not take a connection within a second is taken as down.
        connection = http.client.HTTPConnection(host, int(port), timeout=1)
        try:
            connection.connect()
        except OSError as error:
            connection.close()
            raise NotSent(repr(error)) from error
        connection.sock.settimeout(self.timeout)
        return connection

    def close(self):
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def exchange(self, method, path, body):
        """One try: (status, body); NotSent when no connection could be opened."""
        if not (self.keepalive and self.connection is not None):
            self.close()
            self.connection = self._open()
        headers = {} if self.keepalive else {"Connection": "close"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            self.connection.request(method, path, body=body, headers=headers)
            answer = self.connection.getresponse()
            data = answer.read()
        except BaseException:
            self.close()
            raise
        if not self.keepalive or answer.will_close:
            self.close()
        return answer.status, data


class ClientThreads:
    """Client threads (`self.threads`) started on entering and stopped on leaving, with the seconds between.

    A subclass's threads run until `stop_requested` is set; `join_seconds` bounds the wait for each.
    """

    clock = staticmethod(time.time)
    join_seconds = 60

    def __enter__(self):
        self.started = self.clock()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_requested.set()
        for thread in self.threads:
            thread.join(timeout=self.join_seconds)
        self.elapsed = self.clock() - self.started
        return False


class Traffic(ClientThreads):
    """CLIENTS_PER_KIND clients of each kind against ADDRESS ("host:port") until stopped.

    GETs ask for /requestme, whose answer must be EXPECTED; POSTs send a JSON
    body to /echo, which must come back.
    """

    def __init__(self, address, expected, clients_per_kind=2, timeout=5, give_up=10):
        self.address, self.expected, self.timeout, self.give_up = address, expected, timeout, give_up
        self.lock = threading.Lock()
        self.stop_requested = threading.Event()
        self.counts = Counter()
        self.samples = []
        self.answer_times = []
        self.threads = [threading.Thread(target=self._run, args=(kind, number), daemon=True)
                        for kind in KINDS for number in range(clients_per_kind)]
        self.started = self.elapsed = None
        self.join_seconds = give_up + timeout * 3

    def _count(self, kind, method, outcome, sample=None):
        with self.lock:
            self.counts[(kind, method, outcome)] += 1
            if outcome == "ok":
                self.answer_times.append(time.time())
            elif outcome == "failed" and len(self.samples) < 20:
                self.samples.append(f"{kind} {method}: {sample}")

    def _run(self, kind, number):
        keepalive, retry = KINDS[kind]
        client = Client(self.address, keepalive, self.timeout)
        sequence = 0
        while not self.stop_requested.is_set():
            sequence += 1
            self._request(client, kind, retry, sequence % 2 == 0, {"kind": kind, "client": number, "sequence": sequence})
        client.close()

    def _request(self, client, kind, retry, post, payload):
        method = "POST" if post else "GET"
        path, body = ("/echo", json.dumps(payload)) if post else ("/requestme", None)
        deadline = time.time() + self.give_up
        while True:
            try:
                status, data = client.exchange(method, path, body)
            except NotSent as error:
                if time.time() > deadline:
                    self._count(kind, method, "failed", f"never sent: {error}")
                    return
                self._count(kind, method, "resent")
                time.sleep(0.05)
                continue
            except (OSError, http.client.HTTPException) as error:
                if post or not retry or time.time() > deadline:
                    self._count(kind, method, "failed", repr(error))
                    return
                self._count(kind, method, "retried")
                continue
            try:
                answer = json.loads(data)
            except ValueError:
                answer = None
            good = 200 <= status < 300 and isinstance(answer, dict) and (
                answer.get("echo") == payload if post else answer == self.expected)
            self._count(kind, method, "ok" if good else "failed", f"{status} {data[:200]!r}")
            return

    def report(self):
        return Report({"started": self.started, "elapsed": self.elapsed, "samples": self.samples,
                       "answer_times": sorted(self.answer_times),
                       "counts": [[kind, method, outcome, count] for (kind, method, outcome), count in self.counts.items()]})


class Report:
    """What a run of Traffic counted, from the run itself or from its JSON."""

    def __init__(self, document):
        self.document = document
        self.started, self.elapsed = document["started"], document["elapsed"]
        self.answer_times = document["answer_times"]
        self.samples = document["samples"]
        self.counts = Counter({(kind, method, outcome): count for kind, method, outcome, count in document["counts"]})

    def failed(self, kind=None, method=None):
        return sum(count for (k, m, outcome), count in self.counts.items()
                   if outcome == "failed" and kind in (None, k) and method in (None, m))

    def answered(self):
        return sum(count for (_k, _m, outcome), count in self.counts.items() if outcome == "ok")

    def longest_gap(self, start=None, end=None):
        """The longest time (s) without any good answer between START and END (wall clock; default: the run)."""
        start = self.started if start is None else start
        end = self.started + self.elapsed if end is None else end
        marks = [start] + [moment for moment in self.answer_times if start < moment < end] + [end]
        return max(later - earlier for earlier, later in zip(marks, marks[1:]))

    def summary(self):
        lines = [f"{self.answered()} good answers in {self.elapsed:.1f}s ({self.answered() / self.elapsed:.0f}/s)"]
        for kind in KINDS:
            for method in ("GET", "POST"):
                lines.append(f"  {kind} {method}: " + ", ".join(
                    f"{outcome} {self.counts[(kind, method, outcome)]}" for outcome in OUTCOMES))
        if self.samples:
            lines.append(f"  failures: {self.samples}")
        return "\n".join(lines)


class TrafficFrom:
    """Traffic run in the container CONTAINER (python3 there), from its address; `report` once it is over."""

    def __init__(self, container, address, expected, clients_per_kind=2):
        self.container = container
        self.command = ["docker", "exec", "-i", container, "python3", "/tmp/traffic.py", address,
                        "--expected", json.dumps(expected), "--clients-per-kind", str(clients_per_kind)]
        self.process = self.report = None

    def __enter__(self):
        subprocess.run(["docker", "cp", str(Path(__file__)), f"{self.container}:/tmp/traffic.py"], check=True)
        self.process = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        # Started: the script says so once its clients run.
        assert self.process.stdout.readline().strip() == "started", f"traffic from {self.container} did not start"
        return self

    def __exit__(self, *exc):
        output, _ = self.process.communicate("stop\n", timeout=60)
        assert self.process.returncode == 0, output
        self.report = Report(json.loads(output))
        return False


# What curl writes for each request it ends (--write-out; curl turns the backslash-n into a line break):
# the status, the HTTP version, curl's exit code for that request.
CURL_OUTCOME = r"%{http_code} %{http_version} %{exitcode}\n"


def http2_outcomes(lines):
    """Counter of CURL_OUTCOME lines: {"200 2 0": 9998, "000 2 92": 2}. Only "200 2 0" (answered 200 over
    HTTP/2, no error) is a good answer."""
    return Counter(line.strip() for line in lines if line.strip())


class Http2From:
    """Unpaced HTTP/2 over TLS from the container CONTAINER, as a browser or an HTTP library sends it: curl,
    STREAMS requests at once on one connection, a new connection when the server says GOAWAY, and the
    requests that connection did not take sent on the new one (RFC 9113). `outcomes` once it is over.
    The name in URL must be the certificate's; no certificate is checked: the traffic is the test's own."""

    def __init__(self, container, url, streams=8):
        self.container = container
        self.command = ["docker", "exec", container, "curl", "--insecure", "--http2", "--silent",
                        "--parallel", "--parallel-max", str(streams), "--output", "/dev/null",
                        "--write-out", CURL_OUTCOME, f"{url}?[1-10000000]"]
        self.process = self.outcomes = None

    def __enter__(self):
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        return self

    def __exit__(self, *exc):
        # The requests curl has not ended when it is stopped print nothing: only the ended ones are counted.
        subprocess.run(["docker", "exec", self.container, "pkill", "-x", "curl"], check=False)
        output, _ = self.process.communicate(timeout=30)
        self.outcomes = http2_outcomes(output.splitlines())
        return False

    @property
    def answered(self):
        return self.outcomes["200 2 0"]

    @property
    def failed(self):
        return sum(self.outcomes.values()) - self.answered

    def summary(self):
        return f"HTTP/2: {self.answered} good answers, {self.failed} failed; {dict(self.outcomes)}"


def main(argv=None):
    parser = argparse.ArgumentParser(description="Unpaced traffic to ADDRESS until a line comes on standard input.")
    parser.add_argument("address", help="host:port")
    parser.add_argument("--expected", required=True, help="the JSON answer of GET /requestme")
    parser.add_argument("--clients-per-kind", type=int, default=2)
    options = parser.parse_args(argv)
    with Traffic(options.address, json.loads(options.expected), options.clients_per_kind) as traffic:
        print("started", flush=True)
        sys.stdin.readline()
    print(json.dumps(traffic.report().document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
