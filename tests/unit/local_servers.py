"""Servers on 127.0.0.1 that a unit test starts for one with-block, each in a background thread."""

import contextlib
import http.server
import json
import socket
import socketserver
import ssl
import sys
import threading

from tests.support import tls


class LocalServer(socketserver.ThreadingTCPServer):
    """A thread per connection, as a real server serves clients side by side."""

    allow_reuse_address = True
    # Tests open dozens of connections at once; the default backlog of 5 would
    # drop their SYNs and add the kernel's one-second retries to the timings.
    request_queue_size = 128
    # A handler still blocked on a silent client must not hold up the test's end.
    daemon_threads = True
    block_on_close = False

    @property
    def port(self):
        return self.server_address[1]

    def handle_error(self, request, client_address):
        # Clients that reset their connections (the slow clients leaving, a
        # probe giving up) are the tests' doing; anything else is printed.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serving(handler_class, tls=None, **shared):
    """A `LocalServer` running `handler_class` for the with-block.

    `tls`, a server-side ssl.SSLContext, makes every connection TLS: the
    handshake happens in accept(), before the handler sees the connection.
    `shared` becomes attributes of the server, which handlers reach as
    `self.server.<name>` (counters, limits, a record of what arrived).
    """
    server = LocalServer(("127.0.0.1", 0), handler_class)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    for name, value in shared.items():
        setattr(server, name, value)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class CountingHTTPHandler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, answering GET with `answer(number)` of the
    number-th request, and counting on the server (see `serving_http`)."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm the second
    # waits for the client's delayed ACK, 40 ms a request on a kept-alive connection.
    disable_nagle_algorithm = True

    def setup(self):
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def do_GET(self):
        with self.server.lock:
            self.server.requests += 1
            number = self.server.requests
            self.server.hosts.add(self.headers["Host"])
        self.answer(number)

    def answer(self, number):
        self.send_json(200, {"request": number})

    def send_json(self, status, payload, headers=(), close=False):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass  # a line on stderr per request would bury pytest's report


def serving_http(handler_class=CountingHTTPHandler, tls=None, **shared):
    """`serving` a `CountingHTTPHandler`, with the counts it keeps: `connections`, `requests`, `hosts` (Host values)."""
    return serving(handler_class, tls=tls, lock=threading.Lock(), connections=0, requests=0, hosts=set(), **shared)


def server_context(files, minimum=None, maximum=None, ciphers=None):
    """A server-side context with the certificate in `files`, limited to the versions and ciphers given."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.certfile, files.keyfile)
    tls.limit_versions(context, minimum or ssl.TLSVersion.TLSv1_2, maximum or ssl.TLSVersion.MAXIMUM_SUPPORTED)
    if ciphers:
        context.set_ciphers(ciphers)
    return context


def unused_port():
    """A port on 127.0.0.1 that nothing listens on, so a connection to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
