# -*- coding: utf-8 -*-
"""Shape checks of the load balancer's inputs that land in its nginx and sysctl files.

Each *_errors function returns the list of problems (empty: the input is
fine), each naming the variable and the bad value, so that preflight fails
before anything on a host changes. Every rule keeps a value to the words nginx
reads in its directive: no ';', '{', '}', '#', quote or line break can end
the directive, open a block or add another one. The filters
nginx_lb_input_errors (every check of the role's own inputs at once) and
nginx_lb_peer_errors (those of the upstream's backends) make preflight one
task per host each, instead of one per check.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import re


def _load_site_name_rule():
    # The module nginx_lb_rotation imports this rule from the role's
    # module_utils, which a plugin on the controller cannot import by name.
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "module_utils", "nginx_lb_site_name.py")
    spec = importlib.util.spec_from_file_location("nginx_lb_site_name", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SITE_NAME_RULE = _load_site_name_rule()

# A client_max_body_size as nginx reads a size: a number of bytes, or of k, m or g.
BODY_SIZE = re.compile(r"[0-9]+[kKmMgG]?\Z")
# One name of server_name: a host name; a wildcard at its start or end
# (*.example.com, www.example.*); .example.com (the name and its subdomains);
# or _ (matches no host: the catch-all). Regular expressions (~...) are refused.
_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?"
_HOST = r"%s(\.%s)*" % (_LABEL, _LABEL)
_SERVER_NAME = r"((\*\.|\.)?%s|%s\.\*)" % (_HOST, _HOST)
SERVER_NAMES = re.compile(r"%s( +%s)*\Z" % (_SERVER_NAME, _SERVER_NAME))
# The hash directive's key, one word of text and variables ($name, ${name}),
# and its optional consistent flag (ketama consistent hashing).
_HASH_WORD = r"(\$[A-Za-z0-9_]+|\$\{[A-Za-z0-9_]+\}|[A-Za-z0-9_.:/@=&?+,%-])+"
HASH_KEY = re.compile(r"%s( consistent)?\Z" % _HASH_WORD)
# An absolute path of plain parts: no '.' or '..' part, no empty one, no
# trailing '/', and none of the characters nginx reads as a variable ($).
SAFE_PATH = re.compile(r"(/(?!\.\.?(/|\Z))[A-Za-z0-9_.+-]+)+\Z")
# An inventory group name as Ansible takes one.
GROUP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


def _problem(variable, value, expected):
    # As YAML or JSON would write it, as the upstream filter shows values: "a;b", 10, null.
    try:
        shown = json.dumps(value)
    except TypeError:
        shown = repr(value)
    return f"{variable} must be {expected}, got {shown}"


def _shaped(pattern, *words):
    """A test of a value: it matches `pattern`, or is one of `words`."""
    def accepts(value):
        if value in words:
            return True
        # A number in YAML (client_max_body_size: 10) is the size written as text.
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        return isinstance(value, str) and pattern.match(value) is not None
    return accepts


def _rule(variable, expected, accepts):
    """An *_errors filter: no problem for a value `accepts` takes, else one naming `variable` and the value."""
    def errors(value, variable=variable):
        return [] if accepts(value) else [_problem(variable, value, expected)]
    return errors


# The site's name names its files and its upstream.
site_name_errors = _rule("nginx_lb_site_name", SITE_NAME_RULE.SITE_NAME_SHAPE, SITE_NAME_RULE.is_site_name)
# The backend group is named in the site's comments.
group_name_errors = _rule(
    "nginx_lb_backend_group", "an inventory group name: letters, digits, '_' and '-', starting with a letter or '_'",
    _shaped(GROUP_NAME))
server_name_errors = _rule(
    "nginx_lb_server_name", "host names separated by spaces, each like example.com, *.example.com, .example.com or "
    "www.example.*, or _", _shaped(SERVER_NAMES))
hash_key_errors = _rule(
    "nginx_lb_hash_key", "one word of text and nginx variables ($name or ${name}), without spaces, quotes or ;{}#, "
    "optionally followed by consistent (e.g. $request_uri consistent)", _shaped(HASH_KEY))
access_log_errors = _rule(
    "nginx_lb_access_log", "off or an absolute path of letters, digits and '_.+-', with no '.', '..' or empty part",
    _shaped(SAFE_PATH, "off"))
body_size_errors = _rule(
    "nginx_lb_client_max_body_size", "a size as nginx reads it: digits, then optionally k, m or g (e.g. 1m, or 0 for "
    "no limit)", _shaped(BODY_SIZE))

# A kernel setting as sysctl.d takes it, and a value on one line of that file.
SYSCTL_KEY = re.compile(r"[a-z0-9_]+(\.[a-z0-9_-]+)+\Z")
SYSCTL_VALUE_BREAKING = re.compile("[\n='\"]")
# The methods nginx can combine with backup servers.
BACKUP_METHODS = ("round_robin", "least_conn")


def _in_range(value, low, high=None):
    """Whether VALUE, a whole number or its text ("8080" from -e), is within LOW and HIGH."""
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"-?[0-9]+", text):
        return False
    return int(text) >= low and (high is None or int(text) <= high)


# An HTTP header name (RFC 9110 token characters nginx takes in add_header).
HEADER_NAME = re.compile(r"[A-Za-z0-9!#%&'*+.^_`|~-]+\Z")
# A header value as the template writes it, in double quotes: printable
# ASCII except the quote, '\\' (an escape) and '$' (a variable).
HEADER_VALUE = re.compile(r"[ !#%-\[\]-~]+\Z")
# An exact path of a location: no space, quote, ';' or brace to end it.
LOCATION_PATH = re.compile(r"/[A-Za-z0-9._~/@:+,=!*-]*\Z")
# An ACME directory: an http(s) URL without anything a shell or a config line would read.
DIRECTORY_URL = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~/%+=-]*)?\Z")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\Z")
# A name a certificate can be issued for over HTTP-01: a host name, no wildcard.
CERTIFICATE_NAME = re.compile(r"%s\Z" % _HOST)
header_size_errors = _rule(
    "nginx_lb_client_header_max_size", "a size as nginx reads it: digits, then optionally k or m (e.g. 4k)",
    _shaped(re.compile(r"[1-9][0-9]*[kKmM]?\Z")))
loadbalancer_group_errors = _rule(
    "nginx_lb_loadbalancer_group", "an inventory group name: letters, digits, '_' and '-', starting with a letter or "
    "'_'", _shaped(GROUP_NAME))


def _bounds_errors(inputs, bounds):
    """One problem per input of BOUNDS ({variable: (low, high)}) that is not a whole number within them."""
    return [_problem(variable, inputs[variable], "a whole number within %s-%s" % (low, high) if high is not None
                     else "a whole number >= %s" % low)
            for variable, (low, high) in bounds.items() if not _in_range(inputs[variable], low, high)]


EDGE_BOUNDS = {
    "nginx_lb_client_header_buffers": (1, 64),
    "nginx_lb_client_header_timeout": (1, None),
    "nginx_lb_client_body_timeout": (1, None),
    "nginx_lb_client_send_timeout": (1, None),
    "nginx_lb_client_keepalive_timeout": (0, None),
    "nginx_lb_rate_limit": (0, None),
    "nginx_lb_rate_limit_burst": (0, None),
    "nginx_lb_connection_limit": (0, 65535),  # nginx refuses a limit_conn above it
    "nginx_lb_retry_after": (0, None),
    "nginx_lb_maintenance_retry_after": (0, None),
    "nginx_lb_https_port": (1, 65535),
    "nginx_lb_hsts_max_age": (0, None),
}


# A size as logrotate's maxsize takes it.
LOG_SIZE = re.compile(r"[0-9]+[kMG]?\Z")


def observability_errors(inputs):
    """Problems with stub_status's port and the log rotation, all of which land in configuration files."""
    errors = _bounds_errors(inputs, {"nginx_lb_stub_status_port": (0, 65535), "nginx_lb_log_rotate_keep": (1, 3650)})
    taken = {str(inputs[name]) for name in ("nginx_lb_listen_port", "nginx_lb_https_port")}
    if str(inputs["nginx_lb_stub_status_port"]) in taken:
        errors.append(_problem("nginx_lb_stub_status_port", inputs["nginx_lb_stub_status_port"],
                               "a port the site does not listen on (nginx_lb_listen_port, nginx_lb_https_port)"))
    if not _shaped(LOG_SIZE)(inputs["nginx_lb_log_rotate_max_size"]):
        errors.append(_problem("nginx_lb_log_rotate_max_size", inputs["nginx_lb_log_rotate_max_size"],
                               "a size as logrotate reads it: digits, then optionally k, M or G (e.g. 100M)"))
    return errors


def edge_errors(inputs):
    """Problems with the client limits, the added headers, the private paths and the maintenance inputs."""
    errors = _bounds_errors(inputs, EDGE_BOUNDS) + header_size_errors(inputs["nginx_lb_client_header_max_size"])
    if "nginx_lb_stub_status_port" in inputs:
        errors += observability_errors(inputs)
    headers = inputs["nginx_lb_security_headers"]
    if not isinstance(headers, dict):
        errors.append(_problem("nginx_lb_security_headers", headers, "a mapping of header names to values"))
    else:
        for name, value in headers.items():
            if not isinstance(name, str) or not HEADER_NAME.match(name):
                errors.append(_problem("nginx_lb_security_headers", name, "header names of letters, digits and "
                                       "!#%&'*+.^_`|~-"))
            elif not isinstance(value, (str, int)) or isinstance(value, bool) or not HEADER_VALUE.match(str(value)):
                errors.append(_problem("nginx_lb_security_headers." + name, value, "a header value of printable "
                                       "characters other than '\"', '\\' and '$'"))
    paths = inputs["nginx_lb_private_paths"]
    if not isinstance(paths, list) or not all(isinstance(path, str) and LOCATION_PATH.match(path) for path in paths):
        errors.append(_problem("nginx_lb_private_paths", paths, "a list of paths, each '/' then letters, digits and "
                               "._~/@:+,=!*- (no space, quote, ';' or brace)"))
    for variable in ("nginx_lb_private_allow", "nginx_lb_maintenance_allow", "nginx_lb_limit_exempt"):
        allowed = inputs[variable]
        if not isinstance(allowed, list) or not all(_is_network(entry) for entry in allowed):
            errors.append(_problem(variable, allowed, "a list of IP addresses or networks (10.0.0.0/8, 2001:db8::/32)"))
    if str(inputs["nginx_lb_https_port"]) == str(inputs["nginx_lb_listen_port"]) and inputs["nginx_lb_tls"] != "none":
        errors.append("nginx_lb_https_port must differ from nginx_lb_listen_port (HTTP), got %s for both"
                      % inputs["nginx_lb_https_port"])
    return errors


def _is_network(entry):
    try:
        ipaddress.ip_network(entry, strict=False)
    except (TypeError, ValueError):
        return False
    return isinstance(entry, str)


def _pem_certificates(text):
    """The certificates in a PEM text, or None when it holds none or a broken one."""
    from cryptography import x509  # ansible-core depends on it: always on the controller.
    if not isinstance(text, str) or "-----BEGIN CERTIFICATE-----" not in text:
        return None
    try:
        return x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        return None


def tls_errors(inputs):
    """Problems with the HTTPS inputs of the chosen certificate source. A key is never shown."""
    source = inputs["nginx_lb_tls"]
    if source == "inventory":
        return certificate_errors(inputs["nginx_lb_tls_certificate"], inputs["nginx_lb_tls_certificate_key"])
    if source != "acme":
        return []
    errors = []
    names = str(inputs["nginx_lb_server_name"]).split()
    if not names or not all(CERTIFICATE_NAME.match(name) and name != "_" for name in names):
        errors.append(_problem("nginx_lb_server_name", inputs["nginx_lb_server_name"], "host names only (no "
                               "wildcard, no leading '.', not _) with nginx_lb_tls acme: the certificate is issued "
                               "for them over HTTP-01"))
    url = inputs["nginx_lb_acme_directory_url"]
    if not isinstance(url, str) or not DIRECTORY_URL.match(url):
        errors.append(_problem("nginx_lb_acme_directory_url", url, "an http(s) URL such as "
                               "https://acme-v02.api.letsencrypt.org/directory"))
    email = inputs["nginx_lb_acme_email"]
    if email and not (isinstance(email, str) and EMAIL.match(email)):
        errors.append(_problem("nginx_lb_acme_email", email, "an e-mail address or empty"))
    bundle = inputs["nginx_lb_acme_ca_bundle"]
    if bundle and _pem_certificates(bundle) is None:
        errors.append("nginx_lb_acme_ca_bundle must be empty or PEM certificates (-----BEGIN CERTIFICATE-----), "
                      "got %s" % json.dumps(str(bundle)[:60]))
    return errors + loadbalancer_group_errors(inputs["nginx_lb_loadbalancer_group"])


def certificate_errors(certificate, key):
    """Problems with an inventory certificate chain and its key: both PEM, and the key the certificate's."""
    from cryptography.hazmat.primitives import serialization
    chain = _pem_certificates(certificate)
    if chain is None:
        return ["nginx_lb_tls_certificate must be a PEM certificate (-----BEGIN CERTIFICATE-----, then any "
                "intermediates) with nginx_lb_tls inventory, got %s" % json.dumps(str(certificate)[:60])]
    try:
        private_key = serialization.load_pem_private_key(str(key).encode(), password=None)
    except (ValueError, TypeError):
        return ["nginx_lb_tls_certificate_key must be the certificate's unencrypted PEM private key with "
                "nginx_lb_tls inventory (value not shown)"]
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if private_key.public_key().public_bytes(serialization.Encoding.PEM, public) != \
            chain[0].public_key().public_bytes(serialization.Encoding.PEM, public):
        return ["nginx_lb_tls_certificate_key is not the key of nginx_lb_tls_certificate (%s)"
                % chain[0].subject.rfc4514_string()]
    return []


def input_errors(inputs, backend_hosts):
    """Every problem with the role's inputs that argument_specs cannot express, in one list.

    INPUTS maps each nginx_lb_* variable checked here to its value;
    BACKEND_HOSTS are the hosts of nginx_lb_backend_group.
    """
    errors = (site_name_errors(inputs["nginx_lb_site_name"]) + group_name_errors(inputs["nginx_lb_backend_group"])
              + server_name_errors(inputs["nginx_lb_server_name"]) + hash_key_errors(inputs["nginx_lb_hash_key"])
              + access_log_errors(inputs["nginx_lb_access_log"])
              + body_size_errors(inputs["nginx_lb_client_max_body_size"]) + edge_errors(inputs) + tls_errors(inputs))
    if not backend_hosts:
        errors.append("nginx_lb_backend_group=%s names no host in the inventory: the upstream would be empty. Add "
                      "backends to that group or point the variable at the right group." % inputs["nginx_lb_backend_group"])
    port, keepalive = inputs["nginx_lb_listen_port"], inputs["nginx_lb_keepalive"]
    connect, read = inputs["nginx_lb_connect_timeout"], inputs["nginx_lb_read_timeout"]
    if not (_in_range(port, 1, 65535) and _in_range(keepalive, 0) and _in_range(connect, 1) and _in_range(read, 1)):
        errors.append("nginx_lb_listen_port must be within 1-65535, nginx_lb_keepalive >= 0 and the timeouts >= 1; got "
                      "listen_port=%s, keepalive=%s, connect_timeout=%s, read_timeout=%s" % (port, keepalive, connect, read))
    connections = inputs["nginx_lb_worker_connections"]
    if not _in_range(connections, 64, 262144):
        errors.append("nginx_lb_worker_connections must be within 64-262144 (each worker may then open twice as many "
                      "files, within systemd's default limit); got %s" % connections)
    sysctl = inputs["nginx_lb_sysctl"]
    if not isinstance(sysctl, dict) or any(
            not isinstance(key, str) or not SYSCTL_KEY.match(key) or isinstance(value, bool)
            or SYSCTL_VALUE_BREAKING.search(str(value)) for key, value in sysctl.items()):
        errors.append("nginx_lb_sysctl needs keys like net.ipv4.tcp_tw_reuse and one-line values (numbers or words, "
                      "not true/false, no '=' or quotes); got %s" % (sysctl,))
    return errors


def peer_errors(peers, balance_method, backend_group):
    """Problems with the upstream's backends as a whole (nginx_lb_upstream_peers checks each one)."""
    errors = []
    backups = [peer["host"] for peer in peers if peer.get("backup")]
    if backups and balance_method not in BACKUP_METHODS:
        errors.append("nginx cannot combine backup servers with nginx_lb_balance_method=%s; backups set on: %s"
                      % (balance_method, ", ".join(backups)))
    if not any(not peer.get("down") and not peer.get("backup") for peer in peers):
        errors.append("every backend of %s is marked down or backup (%s): nothing would serve"
                      % (backend_group, ", ".join(peer["host"] for peer in peers)))
    return errors


class FilterModule:
    def filters(self):
        return {
            "nginx_lb_input_errors": input_errors,
            "nginx_lb_peer_errors": peer_errors,
        }
