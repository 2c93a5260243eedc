"""The TLS probes against real TLS servers on 127.0.0.1, with a CA and certificate made for the run."""

import socketserver
import ssl

import pytest

from tests.support import tls
from tests.unit.local_pki import make_server_files
from tests.unit.local_servers import server_context, serving, unused_port

SERVER_NAME = "edge.test"
TLS12 = ssl.TLSVersion.TLSv1_2
TLS13 = ssl.TLSVersion.TLSv1_3


class HandshakeThenWait(socketserver.BaseRequestHandler):
    """The handshake happened in accept(); wait for the client to hang up, so
    closing first cannot reset a connection whose last handshake bytes the
    client is still reading."""

    def handle(self):
        self.request.settimeout(2)
        try:
            self.request.recv(1)
        except OSError:
            pass


class AnswersInPlainText(socketserver.BaseRequestHandler):
    """Not TLS: what a plain HTTP port says to a ClientHello."""

    def handle(self):
        self.request.recv(4096)
        self.request.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_server_files(tmp_path_factory.mktemp("pki"), SERVER_NAME)


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory):
    return make_server_files(tmp_path_factory.mktemp("other-pki"), SERVER_NAME).cafile


def tls_server(files, **limits):
    return serving(HandshakeThenWait, tls=server_context(files, **limits))


def test_a_handshake_reports_protocol_cipher_and_alpn(files):
    context = server_context(files)
    context.set_alpn_protocols(["h2", "http/1.1"])
    with serving(HandshakeThenWait, tls=context) as server:
        handshake = tls.negotiate("127.0.0.1", server.port, SERVER_NAME, files.cafile, alpn=["http/1.1"])
    assert handshake.protocol == "TLSv1.3" and handshake.cipher.startswith("TLS_")
    assert handshake.alpn == "http/1.1"


def test_accepted_tls12_ciphers_are_exactly_those_the_server_allows(files):
    allowed = {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"}
    with tls_server(files, maximum=TLS12, ciphers=":".join(sorted(allowed))) as server:
        assert tls.accepted_tls12_ciphers("127.0.0.1", server.port, SERVER_NAME, files.cafile) == allowed


def test_a_tls13_only_server_refuses_a_tls12_handshake(files):
    with tls_server(files, minimum=TLS13) as server:
        assert tls.negotiate("127.0.0.1", server.port, SERVER_NAME, files.cafile, maximum=TLS12) is None
        assert tls.negotiate("127.0.0.1", server.port, SERVER_NAME, files.cafile).protocol == "TLSv1.3"


def test_tls10_and_tls11_are_really_offered_so_a_refusal_is_the_servers(files):
    # The server needs security level 0 too, to sign a TLS 1.0/1.1 handshake with MD5+SHA-1.
    with tls_server(files, minimum=ssl.TLSVersion.TLSv1, ciphers="DEFAULT:@SECLEVEL=0") as server:
        for version, name in ((ssl.TLSVersion.TLSv1, "TLSv1"), (ssl.TLSVersion.TLSv1_1, "TLSv1.1")):
            handshake = tls.negotiate("127.0.0.1", server.port, SERVER_NAME, files.cafile, maximum=version)
            assert handshake.protocol == name


def test_a_server_from_tls12_up_refuses_tls11_and_below(files):
    with tls_server(files, minimum=TLS12) as server:
        assert tls.negotiate("127.0.0.1", server.port, SERVER_NAME, files.cafile,
                             maximum=ssl.TLSVersion.TLSv1_1) is None


def test_a_certificate_from_another_ca_fails_verification_rather_than_counting_as_a_refusal(files, other_ca):
    with tls_server(files) as server, pytest.raises(ssl.SSLCertVerificationError):
        tls.negotiate("127.0.0.1", server.port, SERVER_NAME, other_ca)


def test_a_certificate_for_another_name_fails_verification(files):
    with tls_server(files) as server, pytest.raises(ssl.SSLCertVerificationError):
        tls.negotiate("127.0.0.1", server.port, "other.test", files.cafile)


def test_a_refused_connection_raises():
    with pytest.raises(ConnectionRefusedError):
        tls.negotiate("127.0.0.1", unused_port(), SERVER_NAME, None)


def test_a_port_that_does_not_speak_tls_raises(files):
    with serving(AnswersInPlainText) as server, pytest.raises(ssl.SSLError):
        tls.negotiate("127.0.0.1", server.port, SERVER_NAME, files.cafile)


def test_the_mozilla_ciphers_are_named_as_the_local_openssl_names_them():
    assert tls.MOZILLA_INTERMEDIATE_TLS12_CIPHERS <= set(tls.tls12_cipher_names())
