# -*- coding: utf-8 -*-
"""The rule for a site's name, which names the site's files on a load balancer.

nginx_lb_rotation imports it as ansible.module_utils.nginx_lb_site_name, and
the nginx_lb_inputs filter plugin loads this file by its path (a plugin on
the controller cannot import a role's module_utils), so that preflight and
the module refuse the same names.
"""

from __future__ import annotations

import re

# A name the site's files take as theirs: conf.d/NAME.conf and NAME.upstream
# (the site includes the latter by name), sysctl.d/60-NAME.conf and the
# rotation's NAME.json. No '/' (another directory), no hidden file, nothing
# nginx's include would read as a glob or a second word.
SITE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
SITE_NAME_SHAPE = "a file name: letters, digits, '.', '_' and '-', not starting with '.' or '-'"


def is_site_name(name):
    """Whether `name` is a site's name."""
    return isinstance(name, str) and SITE_NAME.match(name) is not None
