"""Steady client traffic through a load balancer, every answer counted."""

import http.client
import json
import threading
import time
from collections import Counter

from tests.support.traffic import ClientThreads
from tests.support.web import EXPECTED_BODY


class LoadGenerator(ClientThreads):
    """Steady traffic through the load balancer while something else happens.

    `concurrency` threads alternate GET /requestme and POST /echo, each request
    on a new connection (a client's idle keep-alive connection can be closed by
    any server at any time, and then only the client can retry; a new
    connection per request makes every failure the server's). Every answer is
    counted: 2xx with the right body, any other status, transport errors.
    Paced at `rate` requests per second in all, so the load does not starve
    the deploy it watches; runs until stopped and at least `min_requests` were
    sent, and never longer than `max_seconds` (a bounded loop by design).
    Another app: GET `path` only (echo=False), whose JSON answer `expected`
    accepts (a function of the decoded body). HTTPS: `connect` makes each
    connection (tests.support.endpoint.Endpoint(url, cafile, name).connect).
    """

    clock = staticmethod(time.monotonic)

    def __init__(self, address, concurrency=8, rate=100, min_requests=2000, max_seconds=900,
                 path="/requestme", expected=EXPECTED_BODY.__eq__, echo=True, connect=None):
        self.address, self.concurrency = address, concurrency
        # A new connection per request: plain HTTP to `address`, or `connect`'s (an Endpoint's, for HTTPS).
        self.connect = connect or (lambda: http.client.HTTPConnection(address, timeout=10))
        self.path, self.expected, self.echo = path, expected, echo
        self.interval = concurrency / rate
        self.min_requests, self.max_seconds = min_requests, max_seconds
        self.lock = threading.Lock()
        self.stop_requested = threading.Event()
        self.ok = self.non_2xx = self.errors = 0
        # Answers by HTTP status, whatever their body: {200: 1480, 503: 20}.
        self.statuses = Counter()
        self.samples = []
        self.threads = [threading.Thread(target=self._run, args=(number,), daemon=True)
                        for number in range(concurrency)]
        self.started = self.elapsed = None
        self.join_seconds = max_seconds

    @property
    def total(self):
        return self.ok + self.non_2xx + self.errors

    def _record(self, kind, sample):
        with self.lock:
            setattr(self, kind, getattr(self, kind) + 1)
            if kind != "ok" and len(self.samples) < 20:
                self.samples.append(sample)

    def _done(self):
        return (self.stop_requested.is_set() and self.total >= self.min_requests) or \
            time.monotonic() - self.started > self.max_seconds

    def _run(self, number):
        sequence = 0
        next_at = time.monotonic() + number * self.interval / self.concurrency
        while not self._done():
            sequence += 1
            post = self.echo and sequence % 2 == 0
            payload = {"thread": number, "sequence": sequence}
            connection = self.connect()
            try:
                if post:
                    connection.request("POST", "/echo", body=json.dumps(payload),
                                       headers={"Content-Type": "application/json", "Connection": "close"})
                else:
                    connection.request("GET", self.path, headers={"Connection": "close"})
                answer = connection.getresponse()
                body = answer.read()
                with self.lock:
                    self.statuses[answer.status] += 1
                expected = (json.loads(body).get("echo") == payload) if post else self.expected(json.loads(body))
                if 200 <= answer.status < 300 and expected:
                    self._record("ok", None)
                else:
                    self._record("non_2xx", f"{answer.status} {body[:200]!r}")
            except (OSError, http.client.HTTPException, ValueError) as error:
                self._record("errors", repr(error))
            finally:
                connection.close()
            next_at += self.interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def summary(self):
        rate = self.total / self.elapsed if self.elapsed else 0
        return (f"{self.total} requests in {self.elapsed:.1f}s ({rate:.0f}/s), {self.ok} ok, "
                f"{self.non_2xx} non-2xx, {self.errors} errors; samples: {self.samples}")
