"""The shape checks of the app's environment, secrets, WSGI target, name, account, prefix and address families."""

import json

import pytest

from flask_app_inputs import (FilterModule, account_name_errors, address_families_errors, environment_errors,
                              forwarded_allow_ips_errors, input_errors, metrics_errors, monitoring_addresses,
                              prefix_errors, service_name_errors, url_host, wsgi_target_errors)

RESERVED = ["GUNICORN_"]


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"flask_app_input_errors", "flask_app_url_host",
                                                "flask_app_monitoring_addresses"}


def test_plain_settings_pass():
    assert environment_errors({"MY_LOG_LEVEL": "INFO", "_X1": 3, "FLAG": True, "RATIO": 0.5, "EMPTY": ""},
                              "flask_app_environment", RESERVED) == []


@pytest.mark.parametrize("name", ["1ABC", "MY-NAME", "MY NAME", "A=B", "", "É"])
def test_a_name_that_is_no_variable_name_is_refused(name):
    [error] = environment_errors({name: "x"}, "flask_app_environment", RESERVED)
    assert error.startswith(f"flask_app_environment: {name!r} is not an environment variable name")


@pytest.mark.parametrize("value", ["a\nGUNICORN_WORKERS=99", "a\rb", "tab\there", "nul\x00", "next\u2028line", "\x85"])
def test_a_value_that_would_add_a_line_is_refused(value):
    [error] = environment_errors({"MY_VALUE": value}, "flask_app_environment", RESERVED)
    assert "flask_app_environment: MY_VALUE must not hold a line break" in error
    assert repr(value) in error


@pytest.mark.parametrize("value", [{"a": 1}, ["a"], None])
def test_a_value_that_is_no_scalar_is_refused(value):
    [error] = environment_errors({"MY_VALUE": value}, "flask_app_environment", RESERVED)
    assert "must be a string, a number or a boolean" in error


def test_the_role_settings_prefix_is_reserved():
    [error] = environment_errors({"GUNICORN_WORKERS": "9"}, "flask_app_environment", RESERVED)
    assert error == "flask_app_environment: GUNICORN_WORKERS is reserved (names starting with GUNICORN_ are the role's own settings)"


def test_the_release_id_variable_is_the_deploy_s():
    [error] = environment_errors({"APP_RELEASE": "x"}, "flask_app_environment", RESERVED, ["APP_RELEASE"])
    assert "APP_RELEASE is set by the deploy" in error


def test_a_secret_named_in_the_environment_too_is_refused():
    [error] = environment_errors({"KEY": "s3cret-value"}, "flask_app_secrets", RESERVED, [],
                                 {"flask_app_environment": ["KEY"]}, secret=True)
    assert error == "flask_app_secrets: KEY is set in flask_app_environment already"


def test_a_bad_secret_value_is_not_shown():
    [error] = environment_errors({"KEY": "s3cret\nvalue"}, "flask_app_secrets", RESERVED, secret=True)
    assert "s3cret" not in error
    assert "(value not shown)" in error


def test_every_problem_is_listed():
    assert len(environment_errors({"A-B": 1, "C": "x\ny", "GUNICORN_X": 1}, "v", RESERVED)) == 3


def test_a_mapping_is_required():
    assert environment_errors(["A=1"], "flask_app_environment") == [
        "flask_app_environment must be a mapping of names to values, got list"]


@pytest.mark.parametrize("target", ["app", "pkg.module:app", "pkg:create_app()", "a.b.c:make_app", "_p:_a()"])
def test_wsgi_targets_gunicorn_accepts_pass(target):
    assert wsgi_target_errors(target) == []


@pytest.mark.parametrize("target", ["", "pkg:create_app('x')", "pkg:app; rm -rf /", "pkg app", "pkg:", ":app",
                                    "pkg:app()()", "pkg.:app", "$HOME:app", None])
def test_wsgi_targets_of_another_shape_are_refused(target):
    [error] = wsgi_target_errors(target)
    assert error.startswith("flask_app_wsgi_target must be module, module:variable or module:factory()")
    assert repr(target) in error


@pytest.mark.parametrize("name", ["hello-service", "api", "a1-b2"])
def test_service_names_pass(name):
    assert service_name_errors(name) == []


@pytest.mark.parametrize("name", ["", "Hello", "1api", "my_service", "a" * 32, "my service", "../etc", None])
def test_service_names_of_another_shape_are_refused(name):
    [error] = service_name_errors(name)
    assert error.startswith("flask_app_name must be") and repr(name) in error


@pytest.mark.parametrize("address, wanted", [
    ("0.0.0.0", "0.0.0.0"), ("10.0.0.5", "10.0.0.5"), ("::", "[::]"), ("[::]", "[::]"),
    ("fd00::5", "[fd00::5]"), ("[fd00::5]", "[fd00::5]"), ("::ffff:10.0.0.5", "[::ffff:10.0.0.5]"),
])
def test_ipv6_addresses_are_bracketed_once_for_gunicorn_and_urls(address, wanted):
    assert url_host(address) == wanted


@pytest.mark.parametrize("name", ["hello-service", "www-data", "_svc", "app_1", "a" * 31])
def test_system_account_names_pass(name):
    assert account_name_errors(name, "flask_app_user") == []


@pytest.mark.parametrize("variable", ["flask_app_user", "flask_app_group"])
@pytest.mark.parametrize("name", ["app\nUser=root", "app;x", "app{", "app#x", "my app", "app%n", "../app", "App",
                                  "1app", "-app", "", "a" * 32, None])
def test_account_names_of_another_shape_are_refused(variable, name):
    [error] = account_name_errors(name, variable)
    assert error.startswith(f"{variable} must be a system account name") and error.endswith(f"got {name!r}")


@pytest.mark.parametrize("variable", ["flask_app_user", "flask_app_group"])
def test_root_is_refused_as_the_service_account(variable):
    assert account_name_errors("root", variable) == [
        f"{variable} must not be root: the service runs unprivileged, as an account the deploy locks (no password, "
        "no login shell), got 'root'"]


@pytest.mark.parametrize("prefix", ["/opt/hello-service", "/srv/app", "/opt/my_app+2/v1.0", "/opt/.hidden", "/x"])
def test_prefixes_pass(prefix):
    assert prefix_errors(prefix) == []


@pytest.mark.parametrize("prefix", ["/opt/app\nExecStartPre=/bin/sh", "/opt/my app", "/opt/app%n", "/opt/app;x",
                                    "/opt/app{", "/opt/app#x", "/opt/../etc", "/opt/app/..", "/opt/./app", "/opt//app",
                                    "/opt/app/", "opt/app", "~/app", "/opt/$HOME", "/opt/a\\b", "/opt/'a'", "", None])
def test_prefixes_of_another_shape_are_refused(prefix):
    [error] = prefix_errors(prefix)
    assert error.startswith("flask_app_prefix must be an absolute path of letters, digits and '_.+-'")
    assert error.endswith(f"got {prefix!r}")


@pytest.mark.parametrize("prefix", ["/", "/usr", "/etc", "/var", "/opt", "/home"])
def test_a_system_directory_is_refused_as_the_prefix(prefix):
    [error] = prefix_errors(prefix)
    assert error.startswith("flask_app_prefix must be a directory dedicated to the service")
    assert error.endswith(f"got {prefix!r}")


@pytest.mark.parametrize("families", [["AF_INET", "AF_INET6", "AF_UNIX"], ["AF_UNIX"], ["AF_LOCAL", "AF_NETLINK"]])
def test_address_families_with_a_unix_socket_pass(families):
    assert address_families_errors(families) == []


def test_no_address_family_is_refused_since_systemd_would_allow_every_one():
    assert address_families_errors([]) == [
        "flask_app_restrict_address_families must not be empty: an empty RestrictAddressFamilies= lifts the "
        "restriction, got []"]


def test_address_families_without_a_unix_socket_are_refused():
    [error] = address_families_errors(["AF_INET", "AF_INET6"])
    assert error.startswith("flask_app_restrict_address_families must hold AF_UNIX")
    assert error.endswith("got ['AF_INET', 'AF_INET6']")


# The role's defaults, with the demo app's names: every check passes.
GOOD_INPUTS = {
    "flask_app_port": 8080, "flask_app_bind_address": "0.0.0.0", "flask_app_workers": 0, "flask_app_threads": 0,
    "flask_app_timeout": 30, "flask_app_graceful_timeout": 30, "flask_app_worker_class": "auto",
    "flask_app_max_requests": 10000, "flask_app_releases_keep": 3, "flask_app_health_path": "/healthz",
    "flask_app_name": "hello-service", "flask_app_wsgi_target": "hello_service.wsgi:app",
    "flask_app_environment": {"HELLO_SERVICE_LOG_LEVEL": "INFO"}, "flask_app_secrets": {},
    "flask_app_release_id_variable": "HELLO_SERVICE_RELEASE_ID", "flask_app_forwarded_allow_ips": "127.0.0.1,::1",
    "flask_app_user": "hello-service", "flask_app_group": "hello-service", "flask_app_prefix": "/opt/hello-service",
    "flask_app_restrict_address_families": ["AF_INET", "AF_INET6", "AF_UNIX"],
}


def errors_with(**changes):
    return input_errors({**GOOD_INPUTS, **changes}, RESERVED)


def test_the_defaults_pass():
    assert errors_with() == []


def test_numbers_given_as_text_pass():
    # -e flask_app_port=8081 arrives as a string; argument_specs lets it through as an int.
    assert errors_with(flask_app_port="8081", flask_app_workers="3", flask_app_releases_keep="5") == []


@pytest.mark.parametrize("port", [0, 70000, "http", -1, True])
def test_a_port_out_of_range_is_refused(port):
    assert errors_with(flask_app_port=port) == [f"flask_app_port must be within 1-65535, got {port}"]


@pytest.mark.parametrize("address", ["0.0.0.0", "10.0.0.5", "::", "[::]", "fd00::5", "[fd00::5]"])
def test_an_ip_address_binds(address):
    assert errors_with(flask_app_bind_address=address) == []


@pytest.mark.parametrize("address", ["localhost", "10.0.0.256", "10.0.0", "0.0.0.0 ", "10.0.0.5:8080", "", None])
def test_a_bind_address_that_is_no_ip_address_is_refused(address):
    [error] = errors_with(flask_app_bind_address=address)
    assert error.startswith("flask_app_bind_address must be an IP address") and error.endswith(f"got {json.dumps(address)}")


@pytest.mark.parametrize("changes", [{"flask_app_workers": -1}, {"flask_app_threads": -2}, {"flask_app_timeout": 0},
                                     {"flask_app_graceful_timeout": 0}])
def test_gunicorn_sizes_below_their_minimum_are_refused(changes):
    [error] = errors_with(**changes)
    assert error.startswith("flask_app_workers and flask_app_threads must be >= 0")
    assert f"{next(iter(changes)).removeprefix('flask_app_')}={next(iter(changes.values()))}" in error


def test_threads_with_sync_workers_are_refused():
    assert errors_with(flask_app_worker_class="sync", flask_app_threads=1) == []
    [error] = errors_with(flask_app_worker_class="sync", flask_app_threads=4)
    assert error.startswith("flask_app_threads must be 0 or 1 with flask_app_worker_class sync") and error.endswith("4")


def test_recycling_the_only_worker_is_refused():
    assert errors_with(flask_app_workers=1, flask_app_max_requests=0) == []
    [error] = errors_with(flask_app_workers=1)
    assert error.startswith("flask_app_max_requests must be 0 with flask_app_workers 1")
    assert "got flask_app_max_requests=10000" in error


def test_fewer_than_two_releases_kept_is_refused():
    assert errors_with(flask_app_releases_keep=1) == [
        "flask_app_releases_keep must be >= 2 so that a rollback target always exists, got 1"]


def test_a_relative_health_path_is_refused():
    assert errors_with(flask_app_health_path="healthz") == ["flask_app_health_path must start with '/', got healthz"]


@pytest.mark.parametrize("value", ["*", "10.0.0.5", "10.0.0.0/8,192.168.1.2", "::1", "fd00::/8, 10.0.0.1"])
def test_trusted_addresses_and_networks_pass(value):
    assert forwarded_allow_ips_errors(value) == []


def test_a_host_name_among_the_trusted_proxies_is_refused():
    assert forwarded_allow_ips_errors("10.0.0.5,lb1.internal,") == [
        "flask_app_forwarded_allow_ips must list IP addresses or networks, comma separated, or *; got lb1.internal, "
        "(an empty entry) in '10.0.0.5,lb1.internal,'"]


def test_every_problem_is_reported_at_once():
    errors = errors_with(flask_app_port=0, flask_app_user="root", flask_app_secrets={"GUNICORN_X": "hidden"},
                         flask_app_environment={"A": "x\ny"})
    assert [error.split(" ", 1)[0] for error in errors] == [
        "flask_app_port", "flask_app_environment:", "flask_app_secrets:", "flask_app_user"]
    assert "hidden" not in " ".join(errors)


def test_a_secret_named_like_a_setting_or_the_release_id_is_refused():
    errors = errors_with(flask_app_secrets={"HELLO_SERVICE_LOG_LEVEL": "s", "HELLO_SERVICE_RELEASE_ID": "s"})
    assert errors == ["flask_app_secrets: HELLO_SERVICE_LOG_LEVEL is set in flask_app_environment already",
                      "flask_app_secrets: HELLO_SERVICE_RELEASE_ID is set by the deploy (flask_app_release_id_variable)"]


METRICS = {"flask_app_metrics": True, "flask_app_port": 8080, "flask_app_metrics_port": 9101,
           "flask_app_metrics_bind_address": "0.0.0.0", "flask_app_metrics_allow": ["10.0.0.0/24", "2001:db8::7"]}


def test_metrics_inputs_pass():
    assert metrics_errors(METRICS) == []


@pytest.mark.parametrize(("variable", "bad_value"), [
    ("flask_app_metrics_port", 8080),
    ("flask_app_metrics_port", 0),
    ("flask_app_metrics_port", "x"),
    ("flask_app_metrics_bind_address", "monitor.example"),
    ("flask_app_metrics_allow", ["10.0.0.0/24", "everyone"]),
    ("flask_app_metrics_allow", ["10.0.0.1\nallow all"]),
    ("flask_app_metrics_allow", "10.0.0.1"),
])
def test_bad_metrics_input_is_named_with_its_value(variable, bad_value):
    [error] = metrics_errors(dict(METRICS, **{variable: bad_value}))
    assert error.startswith(variable)
    shown = bad_value[-1] if isinstance(bad_value, list) else bad_value
    assert json.dumps(shown) in error


def test_metrics_off_checks_nothing_of_them():
    assert metrics_errors(dict(METRICS, flask_app_metrics=False, flask_app_metrics_port=8080)) == []


def test_monitoring_addresses_are_the_ip_addresses_the_inventory_gives():
    hostvars = {"mon1": {"ansible_host": "10.0.0.9"}, "mon2": {"ansible_host": "mon2.example"},
                "10.0.0.8": {}, "mon3": {"ansible_host": "2001:db8::9"}}
    assert monitoring_addresses(["mon1", "mon2", "10.0.0.8", "mon3"], hostvars) == ["10.0.0.8", "10.0.0.9",
                                                                                  "2001:db8::9"]
