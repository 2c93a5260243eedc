"""A burst of requests as fast as a few keep-alive connections carry them, every answer counted by status."""

import collections
import http.client
import threading
import time
from typing import NamedTuple

from tests.support.endpoint import Endpoint


class Answer(NamedTuple):
    status: int
    headers: http.client.HTTPMessage  # case-insensitive: headers["Retry-After"]
    body: str


class BurstResult(NamedTuple):
    statuses: collections.Counter  # status -> how many answers had it
    samples: list  # a few `Answer`s of each non-2xx status, in the order they came
    errors: collections.Counter  # exception type name -> requests that got no answer
    connections: int  # connections opened: `concurrency` unless the server closed some
    seconds: float


class _Burst:
    """The shared state of one burst's threads."""

    def __init__(self, endpoint, requests, samples_per_status, concurrency):
        self.endpoint, self.remaining, self.samples_per_status = endpoint, requests, samples_per_status
        self.lock = threading.Lock()
        # Each connection's first request is taken before any is sent: all of them run side by side, even
        # on a busy machine where the first threads could otherwise send the whole burst alone.
        self.started = threading.Barrier(concurrency)
        self.statuses, self.errors = collections.Counter(), collections.Counter()
        self.samples, self.connections = [], 0

    def take_one(self):
        with self.lock:
            self.remaining -= 1
            return self.remaining >= 0

    def new_connection(self):
        with self.lock:
            self.connections += 1
        return self.endpoint.connect()

    def record(self, answer):
        with self.lock:
            self.statuses[answer.status] += 1
            if not 200 <= answer.status < 300 and \
                    sum(sample.status == answer.status for sample in self.samples) < self.samples_per_status:
                self.samples.append(answer)

    def record_error(self, error):
        with self.lock:
            self.errors[type(error).__name__] += 1

    def send(self):
        """One connection's share of the burst: request after request on it while the server keeps it."""
        connection = None
        taken = self.take_one()
        self.started.wait()
        while taken:
            try:
                connection, answer = self._exchange(connection)
            except (OSError, http.client.HTTPException) as error:
                connection = None
                self.record_error(error)
            else:
                self.record(answer)
            taken = self.take_one()
        if connection is not None:
            connection.close()

    def _exchange(self, connection):
        """One request on `connection`, or on a new one if there is none or the server dropped it.

        Returns the answer and the connection for the next request (None when
        the server said it closes this one).
        """
        if connection is not None:
            try:
                return self._request(connection)
            except ConnectionError:
                # A kept-alive connection that the server closed while it sat
                # idle fails before the request reaches the server (browsers
                # and urllib3 assume so too): send it again on a new one.
                pass
        return self._request(self.new_connection())

    def _request(self, connection):
        try:
            connection.request("GET", self.endpoint.path, headers=self.endpoint.headers)
            response = connection.getresponse()
            answer = Answer(response.status, response.headers, response.read().decode("utf-8", "replace"))
        except BaseException:
            connection.close()
            raise
        if response.will_close:
            connection.close()
            connection = None
        return connection, answer


def burst(url, requests, concurrency, cafile=None, server_name=None, samples_per_status=3, timeout=10):
    """`requests` GETs of `url` as fast as `concurrency` keep-alive connections carry them, side by side.

    Each connection is reused until the server closes it, then replaced, as a
    busy client does. Every request ends in one answer (counted in `statuses`)
    or one error (in `errors`), so they add up to `requests`.
    """
    state = _Burst(Endpoint(url, cafile=cafile, server_name=server_name, timeout=timeout), requests,
                   samples_per_status, concurrency)
    threads = [threading.Thread(target=state.send, daemon=True) for _ in range(concurrency)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return BurstResult(state.statuses, state.samples, state.errors, state.connections, time.monotonic() - started)
