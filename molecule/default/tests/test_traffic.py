"""Real HTTP through the load balancer to the backends."""

from collections import Counter

from conftest import EXPECTED_BODY, SERVICE, request, wait_for

testinfra_hosts = []


def test_requestme_returns_the_original_json(lb_url):
    answer = request(f"{lb_url}/requestme")
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json() == EXPECTED_BODY


def test_server_header_hides_the_version(lb_url):
    assert request(f"{lb_url}/requestme").headers["Server"] == "nginx"


def test_requests_are_spread_over_every_backend(lb_url, backend_by_address):
    served = Counter(backend_by_address[request(f"{lb_url}/requestme").headers["X-Upstream-Addr"]]
                     for _ in range(100))
    assert set(served) == set(backend_by_address.values()), served
    # Round robin: no backend gets less than a third of its fair share.
    assert min(served.values()) >= 100 / len(backend_by_address) / 3, served


def test_unknown_path_is_a_json_404(lb_url):
    answer = request(f"{lb_url}/no-such-page")
    assert answer.status == 404
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["error"] == "not found"


def test_wrong_method_is_a_json_405_with_allow(lb_url):
    answer = request(f"{lb_url}/requestme", method="POST", body={})
    assert answer.status == 405
    assert answer.headers["Content-Type"] == "application/json"
    assert "GET" in answer.headers["Allow"]


def test_request_id_reaches_the_backend(lb_url):
    answer = request(f"{lb_url}/requestme")
    assert len(answer.headers["X-Request-ID"]) == 32


def test_requests_survive_a_stopped_backend(lb_url, backend_by_address, backend_host):
    victim = sorted(backend_by_address.values())[0]
    host = backend_host(victim)
    host.run(f"systemctl stop {SERVICE}")
    try:
        answers = [request(f"{lb_url}/requestme") for _ in range(50)]
        assert [a.status for a in answers] == [200] * 50
        assert all(a.json() == EXPECTED_BODY for a in answers)
        assert victim not in {backend_by_address[a.headers["X-Upstream-Addr"].split(", ")[-1]] for a in answers}
    finally:
        host.run(f"systemctl start {SERVICE}")
    # Back in rotation once it answers again (nginx retries it after fail_timeout).
    wait_for(lambda: victim in {backend_by_address[request(f"{lb_url}/requestme").headers["X-Upstream-Addr"]
                                                   .split(", ")[-1]] for _ in range(10)},
             timeout=30, what=f"{victim} to serve again")
