"""The failover tests' clients against a real keep-alive HTTP server on 127.0.0.1: what each retries, what the gap is."""

import json
import time

import pytest

from tests.support.traffic import Client, Http2From, NotSent, Report, Traffic, http2_outcomes
from tests.unit.local_servers import CountingHTTPHandler, serving_http, unused_port

EXPECTED = {"message": "Hello Flask.!!"}


class App(CountingHTTPHandler):
    """/requestme and /echo as the demo app answers them; every `server.drop_every`-th request is dropped unanswered."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.requests += 1
            number = self.server.requests
        if self.dropped(number):
            return
        self.send_json(200, {"echo": body})

    def answer(self, number):
        if not self.dropped(number):
            self.send_json(200, EXPECTED)

    def dropped(self, number):
        """Closes the connection without an answer, as a load balancer lost mid-request does."""
        if self.server.drop_every and number % self.server.drop_every == 0:
            self.close_connection = True
            return True
        return False


def test_a_kept_alive_client_sends_every_request_on_one_connection():
    with serving_http(App, drop_every=0) as server:
        client = Client(f"127.0.0.1:{server.port}", keepalive=True, timeout=5)
        for _ in range(5):
            assert client.exchange("GET", "/requestme", None)[0] == 200
        client.close()
    assert server.connections == 1


def test_a_refused_connection_is_never_sent():
    client = Client(f"127.0.0.1:{unused_port()}", keepalive=True, timeout=5)
    with pytest.raises(NotSent):
        client.exchange("POST", "/echo", "{}")


def run(drop_every, seconds=1.0):
    with serving_http(App, drop_every=drop_every) as server:
        with Traffic(f"127.0.0.1:{server.port}", EXPECTED, clients_per_kind=1) as traffic:
            time.sleep(seconds)
    return traffic.report()


def test_with_nothing_dropped_nothing_fails():
    report = run(drop_every=0)
    assert report.failed() == 0 and report.answered() > 50
    assert report.longest_gap() < 0.5


def test_a_dropped_get_is_sent_again_and_a_dropped_post_fails():
    report = run(drop_every=7)
    # Clients that retry lose no GET; their dropped POSTs fail, as RFC 9110 wants.
    assert report.failed("keep-alive", "GET") == report.failed("new connection", "GET") == 0
    assert report.counts[("keep-alive", "GET", "retried")] > 0
    assert report.failed("keep-alive", "POST") > 0
    # The client that never retries loses its dropped GETs too.
    assert report.failed("keep-alive, no retry", "GET") > 0


def test_the_longest_gap_is_the_longest_time_without_a_good_answer():
    report = Report({"started": 100.0, "elapsed": 10.0, "samples": [], "counts": [],
                     "answer_times": [101.0, 101.5, 104.5, 105.0, 109.0]})
    assert report.longest_gap() == 4.0
    assert report.longest_gap(start=104.0, end=106.0) == 1.0
    assert report.longest_gap(start=101.2) == 4.0


def test_a_report_survives_its_json():
    report = run(drop_every=5, seconds=0.3)
    again = Report(json.loads(json.dumps(report.document)))
    assert again.counts == report.counts and again.summary() == report.summary()


def test_only_a_200_over_http2_without_an_error_is_a_good_http2_answer():
    # What curl's --write-out gives: a 200 over HTTP/2; a reset stream (92); a 200 over HTTP/1.1; nothing at all.
    outcomes = http2_outcomes(["200 2 0\n", "200 2 0\n", "000 2 92\n", "200 1.1 0\n", "000 0 7\n", "\n"])
    assert outcomes == {"200 2 0": 2, "000 2 92": 1, "200 1.1 0": 1, "000 0 7": 1}
    traffic = Http2From("client", "https://lb1/requestme")
    traffic.outcomes = outcomes
    assert (traffic.answered, traffic.failed) == (2, 3)
    assert "2 good answers, 3 failed" in traffic.summary()
