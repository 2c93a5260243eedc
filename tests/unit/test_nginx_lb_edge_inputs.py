"""The checks of the edge's inputs: client limits, added headers, private paths and HTTPS."""

import datetime
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from test_nginx_lb_inputs import BREAKING, errors_with


def certificate_and_key(name="lb.example.test"):
    """A self-signed certificate and its key, made for the test."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now)
                   .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


@pytest.mark.parametrize("variable", ["nginx_lb_client_header_buffers", "nginx_lb_client_header_timeout",
                                      "nginx_lb_client_body_timeout", "nginx_lb_client_send_timeout",
                                      "nginx_lb_https_port"])
@pytest.mark.parametrize("value", [0, -1, "10; return 200", "1s", True, None])
def test_limits_and_timeouts_that_are_not_positive_whole_numbers_are_refused(variable, value):
    [error] = errors_with(**{variable: value})
    assert error.startswith(f"{variable} must be a whole number within 1-") or \
        error.startswith(f"{variable} must be a whole number >= 1"), error


def test_a_connection_limit_nginx_cannot_hold_is_refused():
    assert errors_with(nginx_lb_connection_limit=65535) == []
    [error] = errors_with(nginx_lb_connection_limit=65536)
    assert error == "nginx_lb_connection_limit must be a whole number within 0-65535, got 65536"


@pytest.mark.parametrize("variable", ["nginx_lb_rate_limit", "nginx_lb_rate_limit_burst", "nginx_lb_connection_limit",
                                      "nginx_lb_retry_after", "nginx_lb_hsts_max_age",
                                      "nginx_lb_client_keepalive_timeout"])
def test_zero_turns_a_limit_off_and_negative_or_text_is_refused(variable):
    assert errors_with(**{variable: 0}) == []
    for value in (-1, "100r/s", "1;"):
        [error] = errors_with(**{variable: value})
        assert error.startswith(f"{variable} must be a whole number >= 0") or \
            error.startswith(f"{variable} must be a whole number within 0-")


@pytest.mark.parametrize("size", BREAKING + ["0", "4k;", "1g", "k"])
def test_header_sizes_of_another_shape_are_refused(size):
    [error] = errors_with(nginx_lb_client_header_max_size=size)
    assert error.startswith("nginx_lb_client_header_max_size must be a size")


def test_a_content_security_policy_with_quotes_and_semicolons_inside_its_value_passes():
    headers = {"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'", "X-Frame-Options": "DENY"}
    assert errors_with(nginx_lb_security_headers=headers) == []


@pytest.mark.parametrize("value", ['nosniff" always; return 200 "x', "a\nadd_header X y", "$request_id", "a\\", ""])
def test_header_values_that_could_leave_their_quotes_are_refused(value):
    [error] = errors_with(nginx_lb_security_headers={"X-Content-Type-Options": value})
    assert error.startswith("nginx_lb_security_headers.X-Content-Type-Options must be a header value")


@pytest.mark.parametrize("name", ["X Frame", "X-Frame;", "X:", "", "X\n"])
def test_header_names_that_are_not_tokens_are_refused(name):
    [error] = errors_with(nginx_lb_security_headers={name: "DENY"})
    assert error.startswith("nginx_lb_security_headers must be header names")


@pytest.mark.parametrize("paths", [["/healthz x"], ["/healthz;"], ["healthz"], ["/a{"], "/healthz", [None]])
def test_private_paths_of_another_shape_are_refused(paths):
    [error] = errors_with(nginx_lb_private_paths=paths)
    assert error.startswith("nginx_lb_private_paths must be a list of paths")


def test_private_networks_may_be_addresses_or_networks():
    assert errors_with(nginx_lb_private_allow=["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]) == []


@pytest.mark.parametrize("allowed", [["all"], ["10.0.0.0/8; allow all"], ["10.0.0.0/33"], "10.0.0.0/8", [8]])
@pytest.mark.parametrize("variable", ["nginx_lb_private_allow", "nginx_lb_maintenance_allow", "nginx_lb_limit_exempt"])
def test_networks_of_another_shape_are_refused(variable, allowed):
    [error] = errors_with(**{variable: allowed})
    assert error.startswith(f"{variable} must be a list of IP addresses or networks")


def test_maintenance_allows_addresses_and_networks():
    assert errors_with(nginx_lb_maintenance_allow=["127.0.0.1", "192.0.2.0/24", "2001:db8::/32"]) == []


# Each lands in the site's geo block, where a second word or a ';' would add an entry or a directive.
@pytest.mark.parametrize("entry", ["127.0.0.1 1", "127.0.0.1;", "default", "include /etc/passwd", "10.0.0.0/8 0; }"])
def test_a_maintenance_allow_entry_cannot_add_to_the_geo_block(entry):
    [error] = errors_with(nginx_lb_maintenance_allow=[entry])
    assert error.startswith("nginx_lb_maintenance_allow must be a list of IP addresses or networks")


@pytest.mark.parametrize("value", [-1, "300; return 200", "5m", True, None])
def test_a_maintenance_retry_after_that_is_not_whole_seconds_is_refused(value):
    [error] = errors_with(nginx_lb_maintenance_retry_after=value)
    assert error.startswith("nginx_lb_maintenance_retry_after must be a whole number >= 0"), error


def test_https_on_the_http_port_is_refused():
    certificate, key = certificate_and_key()
    [error] = errors_with(nginx_lb_tls="inventory", nginx_lb_tls_certificate=certificate,
                          nginx_lb_tls_certificate_key=key, nginx_lb_https_port=80, nginx_lb_listen_port=80)
    assert error == "nginx_lb_https_port must differ from nginx_lb_listen_port (HTTP), got 80 for both"


def test_an_inventory_certificate_with_its_key_passes():
    certificate, key = certificate_and_key()
    assert errors_with(nginx_lb_tls="inventory", nginx_lb_tls_certificate=certificate,
                       nginx_lb_tls_certificate_key=key) == []


def test_an_inventory_certificate_with_another_key_is_refused_without_showing_the_key():
    certificate, _ = certificate_and_key()
    _, other_key = certificate_and_key()
    [error] = errors_with(nginx_lb_tls="inventory", nginx_lb_tls_certificate=certificate,
                          nginx_lb_tls_certificate_key=other_key)
    assert error == "nginx_lb_tls_certificate_key is not the key of nginx_lb_tls_certificate (CN=lb.example.test)"


@pytest.mark.parametrize("key", ["", "not a key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"])
def test_a_missing_or_broken_key_is_refused_without_showing_it(key):
    certificate, _ = certificate_and_key()
    [error] = errors_with(nginx_lb_tls="inventory", nginx_lb_tls_certificate=certificate, nginx_lb_tls_certificate_key=key)
    assert error.startswith("nginx_lb_tls_certificate_key must be") and (not key or key not in error)


@pytest.mark.parametrize("certificate", ["", "x", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"])
def test_a_missing_or_broken_certificate_is_refused(certificate):
    _, key = certificate_and_key()
    [error] = errors_with(nginx_lb_tls="inventory", nginx_lb_tls_certificate=certificate, nginx_lb_tls_certificate_key=key)
    assert error.startswith("nginx_lb_tls_certificate must be a PEM certificate")


ACME = {"nginx_lb_tls": "acme", "nginx_lb_server_name": "www.example.com example.com"}


def test_acme_for_plain_host_names_passes():
    assert errors_with(**ACME) == []


@pytest.mark.parametrize("names", ["_", "*.example.com", ".example.com", "www.example.*", "example.com _"])
def test_acme_for_names_http_01_cannot_prove_is_refused(names):
    [error] = errors_with(**{**ACME, "nginx_lb_server_name": names})
    assert error.startswith("nginx_lb_server_name must be host names only (no wildcard")


@pytest.mark.parametrize("url", ["ftp://x/dir", "https://x/dir;rm", "https://x/dir y", "https://x/\"", ""])
def test_acme_directories_that_are_not_plain_urls_are_refused(url):
    [error] = errors_with(**ACME, nginx_lb_acme_directory_url=url)
    assert error.startswith("nginx_lb_acme_directory_url must be an http(s) URL")


def test_an_acme_contact_must_be_an_address_and_a_ca_bundle_certificates():
    errors = errors_with(**ACME, nginx_lb_acme_email="ops at example", nginx_lb_acme_ca_bundle="trust me")
    assert [error.split(" ", 1)[0] for error in errors] == ["nginx_lb_acme_email", "nginx_lb_acme_ca_bundle"]
    certificate, _ = certificate_and_key()
    assert errors_with(**ACME, nginx_lb_acme_email="ops@example.com", nginx_lb_acme_ca_bundle=certificate) == []


OBSERVABILITY = {"nginx_lb_stub_status_port": 8081, "nginx_lb_log_rotate_keep": 14, "nginx_lb_log_rotate_max_size": "100M"}


def test_stub_status_and_log_rotation_defaults_pass():
    assert errors_with(**OBSERVABILITY) == []


@pytest.mark.parametrize(("variable", "bad_value", "expected"), [
    ("nginx_lb_stub_status_port", 80, "a port the site does not listen on"),
    ("nginx_lb_stub_status_port", 70000, "a whole number within 0-65535"),
    ("nginx_lb_log_rotate_keep", 0, "a whole number within 1-3650"),
    ("nginx_lb_log_rotate_max_size", "100M; rm", "a size as logrotate reads it"),
])
def test_a_bad_stub_status_or_rotation_input_is_named_with_its_value(variable, bad_value, expected):
    [error] = errors_with(**dict(OBSERVABILITY, **{variable: bad_value}))
    assert error.startswith(f"{variable} must be {expected}"), error
    assert error.endswith(json.dumps(bad_value))
