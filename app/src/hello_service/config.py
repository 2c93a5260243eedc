"""Application settings read from ``HELLO_SERVICE_*`` environment variables.

Every value is validated when the app is created, so a bad deployment fails
at startup with a message naming the variable, instead of misbehaving later.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ENV_PREFIX = "HELLO_SERVICE_"

# The settings this module reads, without the prefix.
SETTING_NAMES = ("PROXY_COUNT", "RELEASE_ID", "LOG_LEVEL", "REQUEST_LOG", "DEBUG", "SECRET_KEY", "ECHO")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Flask signs session cookies with SECRET_KEY; shorter keys are guessable.
SECRET_KEY_MIN_LENGTH = 32

_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


class ConfigError(ValueError):
    """An environment variable holds a value the service cannot use."""

    def __init__(self, variable: str, value: str, expected: str, *, secret: bool = False) -> None:
        # A secret's value must not reach logs or the console: only its length
        # is reported, and it is not kept on the exception either.
        shown = f" (value hidden, {len(value)} characters long)" if secret else f"={value!r}"
        super().__init__(f"{variable}{shown} is invalid: expected {expected}")
        self.variable = variable
        self.value = None if secret else value


def parse_bool(variable: str, value: str) -> bool:
    word = value.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ConfigError(variable, value, "one of true/false, yes/no, on/off, 1/0")


def parse_non_negative_int(variable: str, value: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise ConfigError(variable, value, "an integer >= 0") from None
    if number < 0:
        raise ConfigError(variable, value, "an integer >= 0")
    return number


def parse_log_level(variable: str, value: str) -> str:
    level = value.strip().upper()
    if level not in LOG_LEVELS:
        raise ConfigError(variable, value, "one of " + ", ".join(LOG_LEVELS))
    return level


def parse_secret_key(variable: str, value: str) -> str | None:
    """Blank means unset (None); otherwise at least SECRET_KEY_MIN_LENGTH characters."""
    key = value.strip()
    if not key:
        return None
    if len(key) < SECRET_KEY_MIN_LENGTH:
        raise ConfigError(variable, key, f"at least {SECRET_KEY_MIN_LENGTH} characters", secret=True)
    return key


def load_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """Return the Flask config entries derived from ``environ``.

    Unset variables fall back to defaults that are safe for production:
    no proxies trusted, no debugger, no secret key.
    """

    def raw(name: str, default: str) -> tuple[str, str]:
        variable = ENV_PREFIX + name
        return variable, environ.get(variable, default)

    release_id = environ.get(ENV_PREFIX + "RELEASE_ID", "").strip()
    return {
        "PROXY_COUNT": parse_non_negative_int(*raw("PROXY_COUNT", "0")),
        "RELEASE_ID": release_id or None,
        "LOG_LEVEL": parse_log_level(*raw("LOG_LEVEL", "INFO")),
        # Off: only 5xx answers get a line (at ERROR); the load balancer's
        # access log, with the same X-Request-ID, is the request log. On: one
        # INFO line per request as well.
        "REQUEST_LOG": parse_bool(*raw("REQUEST_LOG", "false")),
        "DEBUG": parse_bool(*raw("DEBUG", "false")),
        # Optional: unset leaves Flask's default (None), so nothing that needs
        # signing (sessions, flash messages) is available.
        "SECRET_KEY": parse_secret_key(*raw("SECRET_KEY", "")),
        # POST /echo, the load tests' endpoint; a production inventory turns it off.
        "ECHO": parse_bool(*raw("ECHO", "true")),
    }
