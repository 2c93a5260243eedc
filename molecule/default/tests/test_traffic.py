"""Real HTTP through the load balancer to the backends."""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor, wait

from conftest import EXPECTED_BODY, SERVICE, request, wait_for

testinfra_hosts = []


def served_by(answer, backend_by_address):
    """The backend that answered: the last address nginx tried."""
    return backend_by_address[answer.headers["X-Upstream-Addr"].split(", ")[-1]]


def test_requestme_returns_the_original_json(lb_url):
    answer = request(f"{lb_url}/requestme")
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json() == EXPECTED_BODY


def test_server_header_hides_the_version(lb_url):
    assert request(f"{lb_url}/requestme").headers["Server"] == "nginx"


def test_requests_are_spread_over_every_backend(lb_url, backend_by_address):
    served = Counter(served_by(request(f"{lb_url}/requestme"), backend_by_address) for _ in range(100))
    assert set(served) == set(backend_by_address.values()), served
    # One at a time, every backend is free: no backend gets less than a third of its fair share.
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
        assert victim not in {served_by(answer, backend_by_address) for answer in answers}
    finally:
        host.run(f"systemctl start {SERVICE}")
    # Back in rotation once it answers again (nginx retries it after fail_timeout).
    wait_for(lambda: victim in {served_by(request(f"{lb_url}/requestme"), backend_by_address) for _ in range(10)},
             timeout=30, what=f"{victim} to serve again")


def test_a_stalled_backend_is_sent_one_request_not_half(lb_url, backend_by_address, backend_host):
    # least_conn, the default: while a backend's answer is late, the free ones get
    # the next requests. Round robin would send the stalled backend every other one,
    # and without the upstream's shared zone each nginx worker would send it one.
    victim = sorted(backend_by_address.values())[0]
    host = backend_host(victim)
    host.check_output(f"systemctl kill --signal=SIGSTOP {SERVICE}")
    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = []
            for _ in range(20):
                # One at a time, each on a new connection (whichever nginx worker takes it).
                answers.append(pool.submit(request, f"{lb_url}/requestme", timeout=60))
                wait(answers[-1:], timeout=2)
            wait(answers, timeout=3)
            late = [answer for answer in answers if not answer.done()]
            on_time = [answer.result() for answer in answers if answer.done()]
            host.check_output(f"systemctl kill --signal=SIGCONT {SERVICE}")
            assert len(late) == 1, f"{len(late)} of 20 requests waited for the stalled backend"
            assert victim not in {served_by(answer, backend_by_address) for answer in on_time}
            # Nothing is lost: the late one is answered by the stalled backend once it runs again.
            (answer,) = [answer.result() for answer in late]
            assert (answer.status, served_by(answer, backend_by_address)) == (200, victim)
    finally:
        host.run(f"systemctl kill --signal=SIGCONT {SERVICE}")
