"""The shape checks of the load balancer's inputs that land in its configuration."""

import json
import pathlib

import pytest
import yaml
from ansible.module_utils.nginx_lb_site_name import SITE_NAME_SHAPE

import nginx_lb_rotation
from nginx_lb_inputs import (FilterModule, access_log_errors, body_size_errors, group_name_errors, hash_key_errors,
                             input_errors, peer_errors, server_name_errors, site_name_errors)

# Values that would end nginx's directive, open or close a block, start a
# comment or add a line, in a word of their own or inside one.
BREAKING = ["x\nx", "x;", "x{", "x}", "x#", "x y", "x\tx", "x'", 'x"', "x\\", ""]


def refused(errors, variable, value):
    [error] = errors
    assert error.startswith(f"{variable} must be ") and error.endswith(f"got {json.dumps(value)}"), error
    return error


def test_the_filters_are_registered():
    assert set(FilterModule().filters()) == {"nginx_lb_input_errors", "nginx_lb_peer_errors"}


# 9000000000g is above what nginx can hold (2^63 - 1 bytes): the shape passes, nginx -t refuses it.
@pytest.mark.parametrize("size", ["1m", "0", "512k", "10M", "2G", "1048576", 10, "9000000000g"])
def test_body_sizes_nginx_reads_pass(size):
    assert body_size_errors(size) == []


@pytest.mark.parametrize("size", BREAKING + ["1m;", "1m; return 200", "1x", "1mb", "-1", "1.5m", "m", True, None])
def test_body_sizes_of_another_shape_are_refused(size):
    refused(body_size_errors(size), "nginx_lb_client_max_body_size", size)


@pytest.mark.parametrize("names", ["_", "example.com", "www.example.com example.com", "*.example.com", ".example.com",
                                   "www.example.*", "lb1", "10.0.0.5", "api-1.internal _"])
def test_server_names_nginx_takes_pass(names):
    assert server_name_errors(names) == []


# A space separates names: it is nginx's own separator there.
@pytest.mark.parametrize("names", [value for value in BREAKING if value != "x y"] + ["example.com;", "example.com; return 200", "a.com{", "~^www\\.", "*",
                                              "*.*.com", "www.*.com", "-a.com", "a..com", " a.com", "a.com ", "a%n",
                                              "$host", None])
def test_server_names_of_another_shape_are_refused(names):
    refused(server_name_errors(names), "nginx_lb_server_name", names)


@pytest.mark.parametrize("key", ["$remote_addr consistent", "$request_uri", "$remote_addr$http_x_tenant",
                                 "${host}-x consistent", "tenant:$arg_id", "consistent"])
def test_hash_keys_nginx_takes_pass(key):
    assert hash_key_errors(key) == []


@pytest.mark.parametrize("key", BREAKING + ["$remote_addr;", "$remote_addr consistent;", "$a $b", "$a consistent x",
                                            "$a  consistent", "$a ketama", "$", "${a", "$remote_addr}", None])
def test_hash_keys_of_another_shape_are_refused(key):
    refused(hash_key_errors(key), "nginx_lb_hash_key", key)


@pytest.mark.parametrize("path", ["off", "/var/log/nginx/hello-service.access.log", "/srv/logs/a_b+c.log"])
def test_access_logs_pass(path):
    assert access_log_errors(path) == []


@pytest.mark.parametrize("path", BREAKING + ["/var/log/a.log;", "/var/log/../../etc/x", "/var/log/./a", "var/log/a",
                                             "/var/log//a", "/var/log/", "/var/log/$host.log", "/var/log/a%n",
                                             "syslog:server=10.0.0.1", "Off", None])
def test_access_logs_of_another_shape_are_refused(path):
    refused(access_log_errors(path), "nginx_lb_access_log", path)


@pytest.mark.parametrize("group", ["backends", "web_app", "app-servers", "_x"])
def test_group_names_pass(group):
    assert group_name_errors(group) == []


@pytest.mark.parametrize("group", BREAKING + ["backends\nupstream", "1st", "a.b", "a/b", None])
def test_group_names_of_another_shape_are_refused(group):
    refused(group_name_errors(group), "nginx_lb_backend_group", group)


SITE_NAMES = ["hello-service", "api.v2", "_x", "A1"]
BAD_SITE_NAMES = BREAKING + ["a/b", "../etc/passwd", "..", ".", ".hidden", "-x", "a*", "a?", "a[b]", "a$b"]


@pytest.mark.parametrize("name", SITE_NAMES)
def test_site_names_pass(name):
    assert site_name_errors(name) == []


@pytest.mark.parametrize("name", BAD_SITE_NAMES + [None])
def test_site_names_of_another_shape_are_refused(name):
    error = refused(site_name_errors(name), "nginx_lb_site_name", name)
    assert "a file name" in error


def _module_refusal(name):
    try:
        nginx_lb_rotation.check_request({"site": name, "state": "query", "peers": None})
    except nginx_lb_rotation.Refused as refusal:
        return str(refusal)
    return None


@pytest.mark.parametrize("name", SITE_NAMES + BAD_SITE_NAMES)
def test_preflight_and_the_rotation_module_refuse_the_same_site_names(name):
    # One rule (the role's module_utils): a name preflight lets through is never refused late.
    if site_name_errors(name):
        assert _module_refusal(name) == f"site must be {SITE_NAME_SHAPE}, got {name!r}"
    else:
        assert _module_refusal(name) is None


# The role's defaults, with a few values of another kind: every check passes.
GOOD_INPUTS = {
    **yaml.safe_load((pathlib.Path(__file__).parents[2] / "roles/nginx_lb/defaults/main.yml").read_text()),
    "nginx_lb_site_name": "hello-service", "nginx_lb_backend_group": "backends", "nginx_lb_server_name": "_",
    "nginx_lb_hash_key": "$remote_addr", "nginx_lb_access_log": "/var/log/nginx/hello-service.access.log",
    "nginx_lb_client_max_body_size": "1m", "nginx_lb_listen_port": 80, "nginx_lb_keepalive": 32,
    "nginx_lb_connect_timeout": 2, "nginx_lb_read_timeout": 30, "nginx_lb_worker_connections": 4096,
    "nginx_lb_sysctl": {"net.ipv4.tcp_tw_reuse": 1, "net.ipv4.ip_local_port_range": "1024 65535"},
}


def errors_with(backend_hosts=("app1",), **changes):
    return input_errors({**GOOD_INPUTS, **changes}, list(backend_hosts))


def test_the_defaults_pass():
    assert errors_with() == []


def test_numbers_given_as_text_pass():
    assert errors_with(nginx_lb_listen_port="8080", nginx_lb_worker_connections="1024") == []


def test_an_empty_backend_group_is_refused():
    assert errors_with(backend_hosts=()) == [
        "nginx_lb_backend_group=backends names no host in the inventory: the upstream would be empty. Add backends to "
        "that group or point the variable at the right group."]


@pytest.mark.parametrize("changes", [{"nginx_lb_listen_port": 0}, {"nginx_lb_listen_port": 65536},
                                     {"nginx_lb_keepalive": -1}, {"nginx_lb_connect_timeout": 0},
                                     {"nginx_lb_read_timeout": "soon"}])
def test_ports_and_timeouts_out_of_range_are_refused(changes):
    [error] = errors_with(**changes)
    assert error.startswith("nginx_lb_listen_port must be within 1-65535, nginx_lb_keepalive >= 0 and the timeouts")
    assert f"{next(iter(changes)).removeprefix('nginx_lb_')}={next(iter(changes.values()))}" in error


@pytest.mark.parametrize("connections", [63, 262145, True])
def test_worker_connections_out_of_range_are_refused(connections):
    [error] = errors_with(nginx_lb_worker_connections=connections)
    assert error.startswith("nginx_lb_worker_connections must be within 64-262144") and error.endswith(f"got {connections}")


@pytest.mark.parametrize("sysctl", [{"tcp_tw_reuse": 1}, {"net.ipv4.tcp_tw_reuse": True},
                                    {"net.ipv4.tcp_tw_reuse": "1\nkernel.panic=1"}, {"net.ipv4.x": "a=b"},
                                    {"net.ipv4.x": "'1'"}, ["net.ipv4.tcp_tw_reuse"]])
def test_kernel_settings_that_are_not_one_line_settings_are_refused(sysctl):
    [error] = errors_with(nginx_lb_sysctl=sysctl)
    assert error.startswith("nginx_lb_sysctl needs keys like net.ipv4.tcp_tw_reuse and one-line values")


def test_every_problem_is_reported_at_once():
    errors = errors_with(nginx_lb_server_name="_; return 200", nginx_lb_worker_connections=16, backend_hosts=())
    assert [error.split(" ", 1)[0] for error in errors] == [
        "nginx_lb_server_name", "nginx_lb_backend_group=backends", "nginx_lb_worker_connections"]


def peer(host, down=False, backup=False):
    return {"host": host, "down": down, "backup": backup}


def test_backends_that_serve_pass():
    assert peer_errors([peer("app1"), peer("app2", backup=True)], "least_conn", "backends") == []


def test_backup_backends_with_a_hash_are_refused():
    assert peer_errors([peer("app1"), peer("app2", backup=True), peer("app3", backup=True)], "ip_hash", "backends") == [
        "nginx cannot combine backup servers with nginx_lb_balance_method=ip_hash; backups set on: app2, app3"]


def test_backends_all_down_or_backup_are_refused():
    assert peer_errors([peer("app1", down=True), peer("app2", backup=True)], "round_robin", "backends") == [
        "every backend of backends is marked down or backup (app1, app2): nothing would serve"]
