"""Slow clients against real servers on 127.0.0.1: one with a deadline for all of a request's headers, one without."""

import resource
import socket
import socketserver
import ssl
import threading
import time

from tests.support.slow_clients import SlowClients, ensure_file_limit
from tests.support.web import wait_for
from tests.unit.local_pki import make_server_files
from tests.unit.local_servers import server_context, serving, unused_port

TIMEOUT_ANSWER = "HTTP/1.1 408 Request Timeout"


class HeaderDeadline(socketserver.BaseRequestHandler):
    """Allows `server.header_deadline` seconds for all of a request's headers, as nginx's
    client_header_timeout does, then answers 408 and closes."""

    def handle(self):
        deadline = time.monotonic() + self.server.header_deadline
        received = b""
        while b"\r\n\r\n" not in received:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self.answer_and_close(TIMEOUT_ANSWER)
            self.request.settimeout(remaining)
            try:
                chunk = self.request.recv(4096)
            except TimeoutError:
                continue
            if not chunk:
                return
            received += chunk
        self.answer_and_close("HTTP/1.1 200 OK")

    def answer_and_close(self, status_line):
        self.request.sendall(f"{status_line}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        self.request.shutdown(socket.SHUT_WR)
        # Read on until the client hangs up, as nginx's lingering close does:
        # closing with its bytes unread would reset the connection, and the
        # reset can overtake the answer.
        self.request.settimeout(1)
        try:
            while self.request.recv(4096):
                pass
        except OSError:
            pass


class WaitsForever(socketserver.BaseRequestHandler):
    """No timeout at all: the slot is the client's for as long as it sends, and every byte is counted."""

    def handle(self):
        while chunk := self.request.recv(4096):
            with self.server.lock:
                self.server.received += len(chunk)


def test_a_header_deadline_closes_every_slow_client_with_408():
    with serving(HeaderDeadline, header_deadline=0.5) as server, \
            SlowClients("127.0.0.1", server.port, connections=50, interval=0.1) as clients:
        assert clients.opened == 50
        wait_for(lambda: clients.closed_by_server == 50, timeout=3, interval=0.05, what="the server closing all 50")
        assert clients.open_now == 0 and clients.status_lines == {TIMEOUT_ANSWER: 50}


def test_without_a_timeout_every_slow_client_stays_open_and_keeps_sending():
    open_counts = []
    with serving(WaitsForever, lock=threading.Lock(), received=0) as server:
        with SlowClients("127.0.0.1", server.port, connections=50, interval=0.05) as clients:
            request_start = len(clients.request_start) * 50

            def dripped_three_bytes_each():
                open_counts.append(clients.open_now)
                return server.received >= request_start + 3 * 50

            wait_for(dripped_three_bytes_each, timeout=3, interval=0.05, what="3 more bytes from each connection")
            leaving = time.monotonic()
        left = time.monotonic()
    assert min(open_counts) == 50 and clients.open_at_exit == 50 and clients.closed_by_server == 0
    assert left - leaving < 2


def test_slow_clients_over_tls_are_closed_by_the_deadline_too(tmp_path):
    files = make_server_files(tmp_path, "edge.test")
    with serving(HeaderDeadline, tls=server_context(files), header_deadline=0.5) as server, \
            SlowClients("127.0.0.1", server.port, connections=20, interval=0.1,
                        tls=ssl.create_default_context(cafile=files.cafile), server_name="edge.test") as clients:
        assert clients.opened == 20
        wait_for(lambda: clients.closed_by_server == 20, timeout=3, interval=0.05, what="the server closing all 20")
        assert clients.status_lines == {TIMEOUT_ANSWER: 20}


def test_connections_that_cannot_open_are_counted_as_failed():
    with SlowClients("127.0.0.1", unused_port(), connections=5, interval=0.1) as clients:
        assert (clients.opened, clients.failed) == (0, 5)
        assert "ConnectionRefusedError" in clients.errors[0]


def test_the_soft_file_limit_is_raised_to_the_hard_one_when_too_low():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        ensure_file_limit(300)
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
