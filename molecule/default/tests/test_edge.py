"""The load balancer's edge, with real clients: HTTPS with a certificate from the scenario's ACME server
(pebble) and Mozilla's intermediate profile, its renewal under load, JSON errors, per-client limits, slow
clients, and the health path kept from the public."""

import http.client
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import uuid

import pytest

from conftest import (PROJECT, LoadGenerator, address_of, container_of, inventory, request, run_playbook, wait_for,
                      write_inventory)
from tests.support.burst import burst
from tests.support.endpoint import Endpoint
from tests.support.latency import latency_sample_apart, percentile
from tests.support.slow_clients import SlowClients
from tests.support.tls import MOZILLA_INTERMEDIATE_TLS12_CIPHERS, accepted_tls12_ciphers, negotiate

# The name the certificate is issued for (nginx_lb_server_name in molecule.yml).
SERVER_NAME = "lb1"
SITE_CERTIFICATE = "/etc/nginx/tls/hello-service.crt"


@pytest.fixture(scope="module")
def lb_address():
    return address_of("lb1")


@pytest.fixture(scope="module")
def acme_root(tmp_path_factory):
    """pebble's root certificate, from its management API: it signs each run's certificates afresh."""
    directory_ca = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "acme-tls", "ca.crt")
    endpoint = Endpoint(f"https://{address_of('acme')}:15000/roots/0", cafile=directory_ca,
                        server_name="acme")
    connection = endpoint.connect()
    connection.request("GET", endpoint.path, headers=endpoint.headers)
    answer = connection.getresponse()
    assert answer.status == 200
    path = tmp_path_factory.mktemp("acme") / "root.pem"
    path.write_bytes(answer.read())
    return str(path)


def https_get(lb_address, acme_root, path, headers=None):
    endpoint = Endpoint(f"https://{lb_address}{path}", cafile=acme_root, server_name=SERVER_NAME)
    connection = endpoint.connect()
    connection.request("GET", endpoint.path, headers={**endpoint.headers, **(headers or {})})
    answer = connection.getresponse()
    return answer.status, answer.headers, answer.read().decode()


def served_serial(lb_address, acme_root):
    with ssl.create_default_context(cafile=acme_root).wrap_socket(
            socket.create_connection((lb_address, 443), timeout=5), server_hostname=SERVER_NAME) as tls:
        return tls.getpeercert()["serialNumber"]


def test_the_acme_certificate_verifies_against_the_acme_servers_root(lb_address, acme_root):
    assert negotiate(lb_address, 443, SERVER_NAME, acme_root) is not None
    assert https_get(lb_address, acme_root, "/requestme")[0] == 200


def test_tls_1_0_and_1_1_are_refused(lb_address, acme_root):
    assert negotiate(lb_address, 443, SERVER_NAME, acme_root, maximum=ssl.TLSVersion.TLSv1) is None
    assert negotiate(lb_address, 443, SERVER_NAME, acme_root, maximum=ssl.TLSVersion.TLSv1_1) is None


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_1_2_and_1_3_are_accepted(lb_address, acme_root, version):
    handshake = negotiate(lb_address, 443, SERVER_NAME, acme_root, minimum=version, maximum=version)
    assert handshake is not None and handshake.protocol == version.name.replace("_", ".")


def test_the_offered_tls_1_2_ciphers_are_within_mozillas_intermediate_list(lb_address, acme_root):
    accepted = accepted_tls12_ciphers(lb_address, 443, SERVER_NAME, acme_root)
    assert accepted and accepted <= MOZILLA_INTERMEDIATE_TLS12_CIPHERS, accepted


def test_http2_is_offered(lb_address, acme_root):
    assert negotiate(lb_address, 443, SERVER_NAME, acme_root, alpn=["h2", "http/1.1"]).alpn == "h2"


def test_https_answers_carry_hsts_and_the_security_headers(lb_address, acme_root):
    status, headers, _ = https_get(lb_address, acme_root, "/requestme")
    assert status == 200
    assert headers["Strict-Transport-Security"] == "max-age=63072000"
    assert (headers["X-Content-Type-Options"], headers["X-Frame-Options"]) == ("nosniff", "DENY")
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


def test_the_health_path_is_not_public(lb_address, acme_root):
    status, headers, body = https_get(lb_address, acme_root, "/healthz")
    assert status == 404 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["error"] == "not found"
    assert "release" not in body


@pytest.mark.parametrize("headers, path, status, error", [
    ({"X-Big": "a" * 5000}, "/requestme", 431, "request header fields too large"),
    ({}, "/" + "a" * 5000, 414, "request uri too large"),
    # Gunicorn's own limit is 100 header fields: its answer is HTML, which nginx replaces.
    ({f"X-Field-{number}": "1" for number in range(120)}, "/requestme", 431, "request header fields too large"),
])
def test_oversized_requests_get_a_json_error_with_the_request_id(lb_address, acme_root, headers, path, status, error):
    answer_status, answer_headers, body = https_get(lb_address, acme_root, path, headers)
    assert answer_status == status and answer_headers["Content-Type"] == "application/json", body
    answer = json.loads(body)
    assert (answer["error"], answer["status"]) == (error, status) and len(answer["request_id"]) == 32
    assert answer_headers["X-Frame-Options"] == "DENY"


def test_an_oversized_body_gets_a_json_413(lb_address, acme_root):
    endpoint = Endpoint(f"https://{lb_address}/echo", cafile=acme_root, server_name=SERVER_NAME)
    connection = endpoint.connect()
    connection.request("POST", "/echo", body=b"x" * (2 * 1024 * 1024),
                       headers={**endpoint.headers, "Content-Type": "application/json"})
    answer = connection.getresponse()
    body = json.loads(answer.read())
    assert answer.status == 413 and (body["error"], body["status"]) == ("request entity too large", 413)


def _paced_requests_from(container, url, count, interval):
    """Statuses of COUNT requests sent from inside CONTAINER (another client address), one every INTERVAL s."""
    script = ("import time, urllib.request, urllib.error\n"
              f"for _ in range({count}):\n"
              "    try:\n"
              f"        print(urllib.request.urlopen('{url}', timeout=10).status)\n"
              "    except urllib.error.HTTPError as error:\n"
              "        print(error.code)\n"
              "    except OSError as error:\n"
              "        print(type(error).__name__)\n"
              f"    time.sleep({interval})\n")
    output = subprocess.run(["docker", "exec", container, "python3", "-c", script], capture_output=True, text=True,
                            check=True).stdout
    return output.split()


def _wrk(url, seconds, connections=32):
    """wrk's summary of SECONDS of GETs of URL over CONNECTIONS keep-alive connections (bench/wrk_summary.lua)."""
    output = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "2s",
                             "-s", f"{PROJECT}/bench/wrk_summary.lua", url],
                            capture_output=True, text=True, check=True, timeout=seconds + 30).stdout
    line = next(line for line in output.splitlines() if line.startswith("BENCH_SUMMARY "))
    summary = json.loads(line.removeprefix("BENCH_SUMMARY "))
    return {**summary, "requests_per_s": round(summary["requests"] / (summary["duration_us"] / 1e6))}


def test_a_client_bursting_above_its_limit_gets_429s_while_another_client_is_served(lb_address):
    # The limit (300/s, a burst of 2000) counts every request of a client, whatever its path. wrk floods
    # the health path, which the load balancer answers itself to the public (404): the flood runs at the
    # client's pace, not at the backends' (on a busy test machine they serve fewer than 300/s, and nginx
    # rightly refuses nothing). A Python client beside it, from the same address, asks for the app.
    url = f"http://{lb_address}/requestme"
    other, flood = {}, {}
    neighbour = threading.Thread(target=lambda: other.update(statuses=_paced_requests_from(
        container_of("app1"), "http://lb1/requestme", 100, 0.05)))
    flooding = threading.Thread(target=lambda: flood.update(_wrk(f"http://{lb_address}/healthz", seconds=8)))
    neighbour.start()
    flooding.start()
    try:
        wait_for(lambda: request(url).status == 429, timeout=8, what="the limit to refuse this address")
        result = burst(url, requests=200, concurrency=4)
    finally:
        flooding.join()
        neighbour.join()
    print(f"burst: wrk {flood.get('requests')} requests ({flood.get('requests_per_s')}/s); beside it, "
          f"{dict(result.statuses)}; other client: {len(other['statuses'])} requests")
    assert result.statuses[429] > 0, result
    answer = next(sample for sample in result.samples if sample.status == 429)
    assert answer.headers["Retry-After"] == "1" and json.loads(answer.body)["error"] == "too many requests"
    assert set(other["statuses"]) == {"200"}, other
    # The tests after this one send from the same address: let the limit's
    # bucket empty (the scenario's burst of 2000 at 300 per second).
    time.sleep(2000 / 300 + 1)


def test_slow_clients_do_not_slow_a_normal_client(lb_address):
    url = f"http://{lb_address}/requestme"
    # Both samples from a process of their own: the slow clients' thread is in this one.
    baseline = latency_sample_apart(url, requests=300)
    with SlowClients(lb_address, 80, connections=500, interval=2.0) as slow:
        attacked = latency_sample_apart(url, requests=300)
        held = slow.open_now
        # nginx_lb_client_header_timeout (10 s) cuts every one of them off.
        wait_for(lambda: slow.closed_by_server == slow.opened, timeout=30, what="the slow clients to be cut off")
    (base_p50, base_p99), (attacked_p50, attacked_p99) = (
        (percentile(sample.latencies, 50), percentile(sample.latencies, 99)) for sample in (baseline, attacked))
    print(f"p50 {base_p50 * 1000:.1f} ms without, {attacked_p50 * 1000:.1f} ms with {held} slow clients open "
          f"(p99 {base_p99 * 1000:.1f} and {attacked_p99 * 1000:.1f} ms); "
          f"{slow.opened} opened, cut off: {slow.closed_by_server}")
    assert slow.opened == 500 and held >= 450
    assert baseline.non_2xx == attacked.non_2xx == 0 and baseline.errors == attacked.errors == []
    # An edge the slow clients held up would refuse or time out newcomers, or keep them waiting for a
    # connection slot: hundreds of milliseconds to the 10 s header timeout. A ratio of milliseconds is no
    # such sign: beside make test's other suites on two cores, the attack's own CPU doubled the p99 (9.2 to
    # 19.3 ms) and, in another run, the median (2.6 to 6.3 ms). So the bound is twice the baseline, or 50 ms
    # above it.
    assert attacked_p50 <= max(2 * base_p50, base_p50 + 0.05)
    assert attacked_p99 <= max(2 * base_p99, base_p99 + 0.05)


def test_a_forced_renewal_under_load_installs_a_new_certificate_and_fails_no_request(lb_address, acme_root):
    before = served_serial(lb_address, acme_root)
    endpoint = Endpoint(f"https://{lb_address}/requestme", cafile=acme_root, server_name=SERVER_NAME)
    lb = inventory().get_host("lb1")
    with LoadGenerator(lb_address, min_requests=600, connect=endpoint.connect) as load:
        renewal = lb.run("REQUESTS_CA_BUNDLE=/etc/nginx/tls/acme-directory-ca.pem "
                         "certbot renew --force-renewal --cert-name hello-service --no-random-sleep-on-renew")
        assert renewal.rc == 0, renewal.stdout + renewal.stderr
        wait_for(lambda: served_serial(lb_address, acme_root) != before, timeout=20, what="the new certificate")
    print(f"renewal under load: {load.summary()}")
    assert load.errors == 0 and load.non_2xx == 0, load.summary()
    assert lb.service("certbot.timer").is_running


def test_a_second_load_balancer_gets_its_certificate_through_the_first(acme_root):
    # The name resolves to lb1; lb2's challenges reach lb1, which has no answer and relays them to lb2.
    lb2_address = address_of("lb2")
    assert negotiate(lb2_address, 443, SERVER_NAME, acme_root) is not None
    relayed = inventory().get_host("lb1").check_output(
        "grep -F /.well-known/acme-challenge/ /var/log/nginx/hello-service.access.log").splitlines()
    answers = [json.loads(line) for line in relayed]
    assert any(answer["upstream_addr"] == f"{lb2_address}:80" and answer["status"] == 200 for answer in answers), \
        answers


def test_a_monitor_on_an_allowed_address_reaches_the_health_path():
    lb = inventory().get_host("lb1")
    answer = lb.check_output("python3 -c \"import urllib.request; "
                             "print(urllib.request.urlopen('http://127.0.0.1/healthz').read().decode())\"")
    assert json.loads(answer)["status"] == "ok"


def test_http2_clients_are_served():
    # h2load (nghttp2), from the scenario's acme container: a real HTTP/2 client, 8 streams at once per connection.
    report = subprocess.run(["docker", "exec", container_of("acme"), "h2load", "--requests=400", "--clients=4",
                             "--max-concurrent-streams=8", f"https://{SERVER_NAME}/requestme"],
                            capture_output=True, text=True, check=True).stdout
    print(report)
    assert "Application protocol: h2" in report
    assert "status codes: 400 2xx, 0 3xx, 0 4xx, 0 5xx" in report


def test_with_the_redirect_on_http_answers_acme_challenges_and_redirects_the_rest(lb_address, tmp_path):
    # The scenario serves the site on HTTP too (its other tests use it): turn the redirect on for this test.
    hosts = write_inventory(tmp_path / "hosts.yml",
                            {"loadbalancers": ["lb1", "lb2"], "backends": ["app1", "app2"]})
    lb = inventory().get_host("lb1")
    token = uuid.uuid4().hex
    challenge = f"/var/lib/nginx-lb/acme/.well-known/acme-challenge/{token}"
    lb.check_output(f"install -D -m 0644 /dev/null {challenge} && echo {token}.key > {challenge}")
    try:
        # lb1 alone: the requests below go to it.
        run_playbook("playbooks/loadbalancers.yml", hosts, "--limit", "lb1", "-e", "nginx_lb_https_redirect=true")
        for path, status, check in ((f"/.well-known/acme-challenge/{token}", 200, lambda answer, body: body ==
                                     f"{token}.key\n"),
                                    ("/requestme?a=1", 308, lambda answer, body: answer.getheader("Location") ==
                                     f"https://{lb_address}/requestme?a=1")):
            connection = http.client.HTTPConnection(lb_address, 80, timeout=10)
            connection.request("GET", path)
            answer = connection.getresponse()
            body = answer.read().decode()
            assert answer.status == status and check(answer, body), (path, answer.status, answer.getheaders(), body)
    finally:
        run_playbook("playbooks/loadbalancers.yml", hosts, "--limit", "lb1")
        lb.run(f"rm -f {challenge}")
