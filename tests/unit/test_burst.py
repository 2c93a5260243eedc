"""The burst client against a real keep-alive HTTP server on 127.0.0.1 that starts limiting after a few requests."""

import json

import pytest

from tests.support.burst import burst
from tests.unit.local_servers import CountingHTTPHandler, serving_http


class RateLimited(CountingHTTPHandler):
    """200 for the first `server.allowed` requests, then 429 with Retry-After and a JSON body, as the edge answers."""

    def answer(self, number):
        if number <= self.server.allowed:
            self.send_json(200, {"request": number})
        else:
            self.send_json(429, {"error": "too many requests"}, headers=[("Retry-After", "1")])


class ClosesEveryThird(CountingHTTPHandler):
    """Ends every connection after its third answer: `server.say_so` decides whether with "Connection: close"."""

    def handle(self):
        self.answered_here = 0
        super().handle()

    def answer(self, number):
        self.answered_here += 1
        third = self.answered_here == 3
        self.send_json(200, {"request": number}, close=third and self.server.say_so)
        self.close_connection = self.close_connection or third


def test_statuses_count_every_answer_and_samples_keep_the_429s():
    with serving_http(RateLimited, allowed=10) as server:
        result = burst(f"http://127.0.0.1:{server.port}/limited", requests=40, concurrency=4)
    assert result.statuses == {200: 10, 429: 30} and not result.errors
    assert len(result.samples) == 3
    for sample in result.samples:
        assert sample.status == 429 and sample.headers["retry-after"] == "1"
        assert json.loads(sample.body) == {"error": "too many requests"}


def test_connections_are_kept_alive():
    with serving_http(allowed=0) as server:
        result = burst(f"http://127.0.0.1:{server.port}/", requests=40, concurrency=4)
    assert result.statuses == {200: 40}
    assert result.connections == server.connections == 4


@pytest.mark.parametrize("say_so", [True, False], ids=["with-connection-close", "without-notice"])
def test_a_connection_the_server_closes_is_replaced_and_no_request_is_lost(say_so):
    # Without notice, the request sent on the dropped connection fails and is sent again on a new one.
    with serving_http(ClosesEveryThird, say_so=say_so) as server:
        result = burst(f"http://127.0.0.1:{server.port}/", requests=30, concurrency=2)
    assert result.statuses == {200: 30} and not result.errors
    assert server.requests == 30 and result.connections == server.connections >= 10
