"""The shape checks of the app's environment, secrets, WSGI target, name, account, prefix and address families."""

import pytest

from flask_app_inputs import (FilterModule, account_name_errors, address_families_errors, environment_errors,
                              prefix_errors, service_name_errors, url_host, wsgi_target_errors)

RESERVED = ["GUNICORN_"]


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {
        "flask_app_environment_errors", "flask_app_wsgi_target_errors", "flask_app_service_name_errors",
        "flask_app_account_name_errors", "flask_app_prefix_errors", "flask_app_address_families_errors",
        "flask_app_url_host"}


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
