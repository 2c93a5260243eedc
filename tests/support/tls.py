"""Probes of a TLS listener: which protocol versions, ciphers and ALPN protocols its handshakes agree to."""

from __future__ import annotations

import re
import socket
import ssl
import warnings
from typing import NamedTuple

# The TLS 1.2 cipher suites of the intermediate configuration in Mozilla's
# Server Side TLS guidelines, version 6.0 (https://ssl-config.mozilla.org/guidelines/6.0.json,
# configurations.intermediate.ciphers.openssl), as OpenSSL names them. TLS 1.3's
# own suites all qualify, so the profile lists none for it.
MOZILLA_INTERMEDIATE_TLS12_CIPHERS = frozenset({
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
})

# Security level 0 lets the probe offer what a server must be shown to refuse.
# At OpenSSL 3's default level the client cannot even offer TLS 1.0/1.1 (their
# handshake signs with MD5+SHA-1), nor weak TLS 1.2 ciphers, and that local
# failure would look like the server's refusal. The server's policy is what is
# under test, not the probe's.
_OFFER_EVERYTHING = "@SECLEVEL=0"

# OpenSSL reports the alert a peer sent with one of these prefixes
# (SSL_R_SSLV3_ALERT_*, SSL_R_TLSV1_ALERT_*, SSL_R_TLSV1_UNRECOGNIZED_NAME,
# SSL_R_TLSV13_ALERT_*: the reason codes from 1000 up). Any other reason is
# this side's own failure (no protocol or cipher it can offer, a reply that is
# not TLS, a certificate it does not trust) and must not pass for a refusal.
_SERVER_ALERT = re.compile(r"^(SSLV3|TLSV1|TLSV13)_")


class Handshake(NamedTuple):
    protocol: str  # as ssl names it: "TLSv1.3", "TLSv1.2", "TLSv1.1", "TLSv1"
    cipher: str  # OpenSSL's name: "ECDHE-RSA-AES128-GCM-SHA256", "TLS_AES_256_GCM_SHA384"
    alpn: str | None  # the application protocol the server picked, None without one


def limit_versions(context, minimum, maximum):
    """Set the TLS versions `context` offers or accepts, TLS 1.0/1.1 included.

    Python warns that those two are deprecated; offering them, or a test
    server accepting them, is the point here, so the warning is silenced.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version, context.maximum_version = minimum, maximum


def client_context(cafile, minimum=None, maximum=None, cipher=None, alpn=None):
    """A client context that trusts only `cafile` and offers exactly what is asked.

    `minimum`/`maximum` are `ssl.TLSVersion`s; left out, the context offers
    every version the local OpenSSL has (TLS 1.0 to 1.3 here), so asking for a
    maximum alone (TLS 1.1) does not end in "no protocols available" against
    Python's default minimum of TLS 1.2. `cipher` is an OpenSSL cipher string
    for TLS 1.2 and below; Python cannot narrow TLS 1.3's suites.
    """
    context = ssl.create_default_context(cafile=cafile)
    limit_versions(context, minimum or ssl.TLSVersion.MINIMUM_SUPPORTED, maximum or ssl.TLSVersion.MAXIMUM_SUPPORTED)
    context.set_ciphers(f"{cipher or 'DEFAULT'}:{_OFFER_EVERYTHING}")
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


def negotiate(address, port, server_name, cafile, minimum=None, maximum=None, cipher=None, alpn=None,
              timeout=5):
    """The `Handshake` one connection agreed, or None when the server refused it.

    The handshake asks for `server_name` (SNI) and checks the server's chain
    against `cafile` and that name. A refusal is the server's alert, or its
    hanging up mid-handshake. Everything else raises: a connection that cannot
    be made (ConnectionRefusedError, timeout), a certificate that does not
    verify (ssl.SSLCertVerificationError: the server did not refuse anything),
    and this side's own inability to offer what was asked (ssl.SSLError).
    Anonymous suites (aNULL) send no certificate, so nothing is verified if a
    server agrees to one: it is returned all the same, as the finding it is.
    """
    context = client_context(cafile, minimum, maximum, cipher, alpn)
    with socket.create_connection((address, port), timeout=timeout) as connection:
        try:
            with context.wrap_socket(connection, server_hostname=server_name) as tls:
                return Handshake(tls.version(), tls.cipher()[0], tls.selected_alpn_protocol())
        except ssl.SSLEOFError:
            return None
        except ssl.SSLError as error:
            if _SERVER_ALERT.match(error.reason or ""):
                return None
            raise


def tls12_cipher_names():
    """Every cipher the local OpenSSL can offer in a TLS 1.2 handshake, by OpenSSL name.

    Left out: TLS 1.3's suites, and the PSK and SRP ones, which need a shared
    secret that Python's ssl cannot supply, so the client would never offer them.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_ciphers(f"ALL:COMPLEMENTOFALL:{_OFFER_EVERYTHING}")
    return sorted(
        cipher["name"] for cipher in context.get_ciphers()
        if cipher["protocol"] != "TLSv1.3" and not re.search(r"psk|srp", cipher["kea"])
    )


def accepted_tls12_ciphers(address, port, server_name, cafile):
    """The TLS 1.2 ciphers the server agrees to, each offered alone in its own handshake."""
    return frozenset(
        name for name in tls12_cipher_names()
        if negotiate(address, port, server_name, cafile, minimum=ssl.TLSVersion.TLSv1_2,
                     maximum=ssl.TLSVersion.TLSv1_2, cipher=name)
    )
