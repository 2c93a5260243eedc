import pytest

from hello_service import ConfigError, create_app
from hello_service.config import SETTING_NAMES, load_settings


@pytest.mark.parametrize("word", ["1", "true", "TRUE", "yes", "on"])
def test_debug_true_words(word):
    assert load_settings({"HELLO_SERVICE_DEBUG": word})["DEBUG"] is True


@pytest.mark.parametrize("word", ["0", "false", "no", "off", ""])
def test_debug_false_words(word):
    assert load_settings({"HELLO_SERVICE_DEBUG": word})["DEBUG"] is False


def test_request_log_is_off_unless_turned_on():
    assert load_settings({})["REQUEST_LOG"] is False
    assert load_settings({"HELLO_SERVICE_REQUEST_LOG": "true"})["REQUEST_LOG"] is True


def test_proxy_count_zero_is_valid():
    assert load_settings({"HELLO_SERVICE_PROXY_COUNT": "0"})["PROXY_COUNT"] == 0


def test_blank_release_id_means_none():
    assert load_settings({"HELLO_SERVICE_RELEASE_ID": "  "})["RELEASE_ID"] is None


@pytest.mark.parametrize("level", ["debug", "Info", "WARNING", "error", "critical"])
def test_log_level_is_case_insensitive(level):
    assert load_settings({"HELLO_SERVICE_LOG_LEVEL": level})["LOG_LEVEL"] == level.upper()


@pytest.mark.parametrize(
    ("variable", "bad_value"),
    [
        ("HELLO_SERVICE_PROXY_COUNT", "-1"),
        ("HELLO_SERVICE_PROXY_COUNT", "two"),
        ("HELLO_SERVICE_PROXY_COUNT", "1.5"),
        ("HELLO_SERVICE_LOG_LEVEL", "verbose"),
        ("HELLO_SERVICE_DEBUG", "maybe"),
        ("HELLO_SERVICE_REQUEST_LOG", "sometimes"),
    ],
)
def test_invalid_value_error_names_variable_and_value(variable, bad_value):
    with pytest.raises(ConfigError) as caught:
        load_settings({variable: bad_value})
    assert variable in str(caught.value)
    assert repr(bad_value) in str(caught.value)


def test_create_app_refuses_invalid_environment(monkeypatch):
    monkeypatch.setenv("HELLO_SERVICE_PROXY_COUNT", "lots")
    with pytest.raises(ConfigError, match="HELLO_SERVICE_PROXY_COUNT='lots'"):
        create_app()


def test_setting_names_match_what_is_read():
    assert set(load_settings({})) == set(SETTING_NAMES)


SECRET = "0123456789abcdef0123456789abcdef"  # 32 characters


def test_secret_key_is_optional():
    assert load_settings({})["SECRET_KEY"] is None


def test_blank_secret_key_means_none():
    assert load_settings({"HELLO_SERVICE_SECRET_KEY": "  "})["SECRET_KEY"] is None


def test_secret_key_of_32_characters_is_accepted():
    assert load_settings({"HELLO_SERVICE_SECRET_KEY": SECRET})["SECRET_KEY"] == SECRET


def test_secret_key_shorter_than_32_characters_is_refused():
    with pytest.raises(ConfigError, match="HELLO_SERVICE_SECRET_KEY"):
        load_settings({"HELLO_SERVICE_SECRET_KEY": SECRET[:31]})


def test_short_secret_key_error_gives_length_not_value():
    with pytest.raises(ConfigError) as caught:
        load_settings({"HELLO_SERVICE_SECRET_KEY": "short-secret-value"})
    assert "18 characters long" in str(caught.value)
    assert "short-secret-value" not in str(caught.value)
    assert caught.value.value is None


def test_create_app_refuses_short_secret_key_without_showing_it(monkeypatch):
    monkeypatch.setenv("HELLO_SERVICE_SECRET_KEY", "too-short")
    with pytest.raises(ConfigError) as caught:
        create_app()
    assert "HELLO_SERVICE_SECRET_KEY" in str(caught.value)
    assert "too-short" not in str(caught.value)


def test_echo_is_on_unless_turned_off():
    assert load_settings({})["ECHO"] is True
    assert load_settings({"HELLO_SERVICE_ECHO": "false"})["ECHO"] is False
