"""Where HTTP clients send requests: a URL's address, with the edge's name for SNI, certificate and Host."""

import http.client
import ssl
import urllib.parse


class _HTTPSConnectionNamed(http.client.HTTPSConnection):
    """An HTTPS connection to one host that asks for, and verifies, another name.

    http.client verifies the host it connects to; a test reaches the edge at a
    container's address while its certificate names the site.
    """

    def __init__(self, host, port, server_name, context, timeout):
        super().__init__(host, port, timeout=timeout, context=context)
        self.server_name, self.tls_context = server_name, context

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self.tls_context.wrap_socket(self.sock, server_hostname=self.server_name)


class Endpoint:
    """`url` (http or https), with `server_name` for SNI, certificate and Host, and `cafile` to trust.

    `connect()` makes a new connection (it opens on its first request);
    `path` and `headers` are what each request sends.
    """

    def __init__(self, url, cafile=None, server_name=None, timeout=10):
        parts = urllib.parse.urlsplit(url)
        self.https = parts.scheme == "https"
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self.server_name = server_name or parts.hostname
        self.path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        self.headers = {"Host": self.server_name + (f":{parts.port}" if parts.port else "")}
        self.tls_context = ssl.create_default_context(cafile=cafile) if self.https else None

    def connect(self):
        if self.https:
            return _HTTPSConnectionNamed(self.host, self.port, self.server_name, self.tls_context, self.timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
