"""The fleet's logs (playbooks/logs.yml) on an app that knows nothing of request ids.

greeter-api neither reads nor echoes X-Request-ID: the id a client gets
comes from the load balancer, and the backend's access log line carries it
because Gunicorn logs the request header nginx sent. One run follows one
request; another shows every host's lines merged.
"""

import pytest

from conftest import request, run_as_user

testinfra_hosts = []

BACKENDS = ["app1", "app2"]
SHOW_TASK = "Show the merged logs of the window"


def merged_lines(hosts_file, *args):
    """The lines logs.yml showed, each split into (time, host, message)."""
    result = run_as_user("playbooks/logs.yml", hosts_file, "-e", "minutes=5", *args)
    shown = list(result.results_of(SHOW_TASK).values())
    assert len(shown) == 1, result.output[-4000:]
    return [tuple(line.split(None, 2)) for line in shown[0]["msg"]]


@pytest.fixture(scope="module")
def traced(scenario_hosts_file, lb_url):
    answer = request(f"{lb_url}/hello")
    assert answer.status == 200
    request_id = answer.headers["X-Request-ID"]
    lines = merged_lines(scenario_hosts_file, "-e", f"request_id={request_id}")
    return request_id, answer.headers["X-Upstream-Addr"], lines


def test_the_answer_carries_the_load_balancer_s_request_id_once(lb_url):
    answer = request(f"{lb_url}/hello")
    assert len(answer.headers.get_all("X-Request-ID")) == 1
    assert len(answer.headers["X-Request-ID"]) == 32


def test_a_request_id_shows_the_load_balancer_line_and_the_backend_it_chose(traced, backend_by_address):
    request_id, answered_by, lines = traced
    assert all(request_id in message for _, _, message in lines), lines
    lb_lines = [message for _, host, message in lines if host == "lb1"]
    assert len(lb_lines) == 1, lines
    upstream = lb_lines[0].split("upstream_addr=")[1].split()[0]
    assert upstream == answered_by
    backends = {host for _, host, _ in lines if host != "lb1"}
    assert backends == {backend_by_address[upstream]}, lines


def test_without_a_request_id_every_host_s_lines_are_merged_in_time_order(scenario_hosts_file, lb_url):
    # Round robin: every backend serves some of these.
    for _ in range(6):
        assert request(f"{lb_url}/hello").status == 200
    lines = merged_lines(scenario_hosts_file)
    times = [time for time, _, _ in lines]
    assert times == sorted(times)
    assert {host for _, host, _ in lines} == {"lb1", *BACKENDS}
    assert any(message.startswith("GET /hello 200 upstream_addr=") for _, host, message in lines if host == "lb1")


def test_a_bad_input_stops_before_any_host_is_contacted(scenario_hosts_file):
    result = run_as_user("playbooks/logs.yml", scenario_hosts_file, "-e", "request_id='x;reboot'", check=False)
    assert result.returncode != 0
    assert "fleet_logs_request_id='x;reboot' is invalid" in result.output
    assert set(result.stats) == {"localhost"}, result.stats
