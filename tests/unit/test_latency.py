"""Latency sampling against a real HTTP(S) server on 127.0.0.1, and the percentile it is summed up with."""

import random

from tests.support.latency import latency_sample, latency_sample_apart, percentile
from tests.unit.local_pki import make_server_files
from tests.unit.local_servers import CountingHTTPHandler, server_context, serving_http, unused_port


class EveryFourthFails(CountingHTTPHandler):
    def answer(self, number):
        self.send_json(503 if number % 4 == 0 else 200, {"request": number})


def test_percentile_is_a_measured_value_by_nearest_rank():
    values = list(range(1, 201))
    random.Random(7).shuffle(values)
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (100, 198, 200)
    assert percentile([0.3], 99) == 0.3


def test_each_request_is_a_new_client_and_non_2xx_answers_are_counted():
    with serving_http(EveryFourthFails) as server:
        sample = latency_sample(f"http://127.0.0.1:{server.port}/", requests=12)
    assert server.connections == 12
    assert len(sample.latencies) == 12 and sample.latencies == sorted(sample.latencies)
    assert sample.non_2xx == 3 and not sample.errors


def test_a_sample_apart_counts_as_one_taken_here():
    with serving_http(EveryFourthFails) as server:
        sample = latency_sample_apart(f"http://127.0.0.1:{server.port}/", requests=8)
    assert server.connections == 8 and len(sample.latencies) == 8 and sample.latencies == sorted(sample.latencies)
    assert sample.non_2xx == 2 and not sample.errors


def test_requests_that_get_no_answer_are_counted_not_raised():
    sample = latency_sample(f"http://127.0.0.1:{unused_port()}/", requests=3)
    assert sample.latencies == [] and len(sample.errors) == 3 and "ConnectionRefusedError" in sample.errors[0]


def test_https_asks_for_and_verifies_the_server_name_not_the_address(tmp_path):
    files = make_server_files(tmp_path, "edge.test")
    with serving_http(tls=server_context(files)) as server:
        sample = latency_sample(f"https://127.0.0.1:{server.port}/", requests=3, cafile=files.cafile,
                                server_name="edge.test")
        assert len(sample.latencies) == 3 and not sample.errors
        assert server.hosts == {f"edge.test:{server.port}"}
        # Without the name, the certificate does not match the address: an error, counted.
        unnamed = latency_sample(f"https://127.0.0.1:{server.port}/", requests=1, cafile=files.cafile)
    assert "SSLCertVerificationError" in unnamed.errors[0]
