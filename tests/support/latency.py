"""How long an ordinary client waits: requests one after another, each on a new connection, and their percentiles."""

import concurrent.futures
import http.client
import math
import multiprocessing
import time
from typing import NamedTuple

from tests.support.endpoint import Endpoint


class LatencySample(NamedTuple):
    latencies: list  # seconds from connecting to the last byte of the body, of every answered request, sorted
    non_2xx: int  # answers whose status was not 2xx (their latencies are in `latencies` too)
    errors: list  # repr() of each request that got no answer (refused, reset, timed out)


def latency_sample(url, requests=200, cafile=None, server_name=None, timeout=10):
    """`requests` GETs of `url`, one at a time, each a new client: a new connection and, over https, a new handshake.

    A new connection per request measures what the edge does to a newcomer
    while something (slow clients, a burst) holds its connections, where a
    kept-alive connection would skip the accept queue and the handshake.
    Failures are counted, not raised: they are what such a test looks for.
    """
    endpoint = Endpoint(url, cafile=cafile, server_name=server_name, timeout=timeout)
    latencies, non_2xx, errors = [], 0, []
    for _ in range(requests):
        connection = endpoint.connect()
        started = time.monotonic()
        try:
            connection.request("GET", endpoint.path, headers={**endpoint.headers, "Connection": "close"})
            answer = connection.getresponse()
            answer.read()
        except (OSError, http.client.HTTPException) as error:
            errors.append(repr(error))
            continue
        finally:
            connection.close()
        latencies.append(time.monotonic() - started)
        if not 200 <= answer.status < 300:
            non_2xx += 1
    return LatencySample(sorted(latencies), non_2xx, errors)


def latency_sample_apart(url, **options):
    """latency_sample in a process of its own: what a newcomer waits, not what this process's other threads
    make it wait. A thread of the caller's (slow clients, a load) would take the interpreter lock for up to
    its switch interval (5 ms) at a time, and that would show as the edge's latency."""
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(latency_sample, url, **options).result()


def percentile(values, p):
    """The nearest-rank `p`th percentile (0 < p <= 100): the smallest of `values` that p% of them do not exceed.

    Always one of the measured values, never an interpolation between two: the
    99th percentile of 200 latencies is the third slowest, with 1% above it.
    """
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]
