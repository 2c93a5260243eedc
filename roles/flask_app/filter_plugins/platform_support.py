# -*- coding: utf-8 -*-
"""Whether a host runs a distribution release that a role supports.

Shared by the roles: this file is flask_app's, and nginx_lb's
filter_plugins/platform_support.py is a link to it (a plugin cannot import
another role's code, and a copy would drift). Each role passes its own list
of supported releases; the rule that reads a host's facts against it is
this one.

The filter supported_platform_errors returns the problems (empty: the host is
supported), as the roles' other *_errors filters do, so that preflight fails
before anything on the host changes, with a message that names what was
found and lists what is supported:

    flask_app supports Debian 12, Debian 13, Ubuntu 24.04; app1 is CentOS 9
"""

from __future__ import annotations


def _text(value):
    return "" if value is None else str(value).strip()


def platform_name(platform):
    """How a supported release is written: "Debian 12", "Ubuntu 24.04"."""
    return "%s %s" % (_text(platform.get("distribution")), _text(platform.get("version")))


def host_release(facts):
    """How a host's release is written from its facts: "CentOS 9", "Debian n/a (forky)"."""
    distribution = _text(facts.get("distribution"))
    if not distribution:
        return "of an unknown distribution (no facts about it were gathered)"
    version = _text(facts.get("distribution_version")) or _text(facts.get("distribution_major_version"))
    release = _text(facts.get("distribution_release"))
    described = "%s %s" % (distribution, version or "of unknown version")
    # The codename tells a testing or unstable release apart, whose version is "n/a".
    if release and release.lower() not in ("n/a", version.lower()):
        described += " (%s)" % release
    return described


def is_supported(facts, platform):
    """Whether the facts are those of the release `platform` names.

    A release is named by its distribution and by its version as the
    distribution numbers its releases: Debian's major version ("12" for
    12.7), Ubuntu's year and month ("24.04").
    """
    if _text(facts.get("distribution")) != _text(platform.get("distribution")):
        return False
    version = _text(platform.get("version"))
    return bool(version) and version in (_text(facts.get("distribution_version")),
                                         _text(facts.get("distribution_major_version")))


def supported_platform_errors(facts, supported, role, host):
    """[] when the host's release is one of `supported`, else the message that refuses it."""
    facts = facts or {}
    if any(is_supported(facts, platform) for platform in supported):
        return []
    return ["%s supports %s; %s is %s" % (role, ", ".join(platform_name(platform) for platform in supported),
                                          host, host_release(facts))]


class FilterModule(object):
    def filters(self):
        return {
            "supported_platform_errors": supported_platform_errors,
        }
