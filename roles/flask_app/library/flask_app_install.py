#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Install a release on a backend: unpack its artifact, then its venv, its packages, its environment file and its marker."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: flask_app_install
short_description: Unpack a release and build its virtual environment offline, with one pip run
description:
  - Installs a release in I(release_dir), which holds C(wheels/), the hash-pinned C(requirements.txt)
    (the app's own wheel pinned too) and C(gunicorn.conf.py). With I(artifact), unpacks that first,
    owned by root and read-only to others, in place of whatever a half-done install left; a member
    that is not a plain file or directory inside the release fails the install.
  - Creates C(venv/) from scratch with I(python)'s C(venv) module and no pip in it, then installs
    every requirement into it with one pip run, from the release's wheels only (no package index)
    and each checked against its hash. Then writes C(release.env) and, last, the C(.installed)
    marker, so that a half-done install is redone from scratch by the next run.
  - A release's venv is built once and never changed, so it carries no installer. pip runs from a
    pip wheel of the host instead, the one C(venv) would copy into every venv; the first directory
    that holds one wins, the newest version in it. I(python) says where its own are (C(WHEEL_PKG_DIR),
    set by Debian and Ubuntu, then C(/usr/share/python-wheels), then its C(ensurepip) bundle).
    Without one, the venv is created with pip, and that pip installs the release.
  - That wheel is unpacked and byte-compiled once, in I(pip_cache_dir). Run from the zip, pip's own
    code would be compiled again at every install, nearly as much work as the install itself.
  - A release whose C(.installed) marker names I(release_id) is left as it is.
options:
  release_dir:
    description: The release's directory, C(<prefix>/releases/<id>).
    type: path
    required: true
  artifact:
    description:
      - The release's artifact (a C(.tar.gz) the build module made) on the host, unpacked into
        I(release_dir) and then removed. Empty expects I(release_dir) unpacked already.
    type: path
    default: ""
  release_id:
    description: The release's id, written to C(.installed) and C(release.env).
    type: str
    required: true
  release_id_variable:
    description:
      - Name of the environment variable C(release.env) sets to I(release_id); empty writes a comment
        instead and the app is not told its release.
    type: str
    default: ""
  python:
    description: The host's interpreter the venv is made from (the service's Python).
    type: path
    default: /usr/bin/python3
  pip_cache_dir:
    description: Where the host's pip wheel is kept unpacked and byte-compiled, one directory per wheel.
    type: path
    default: /var/cache/flask_app/pip
"""

EXAMPLES = r"""
- name: Install the release
  flask_app_install:
    artifact: /opt/orders/releases/3f2a9c1b7d04.tar.gz
    release_dir: /opt/orders/releases/3f2a9c1b7d04
    release_id: 3f2a9c1b7d04
    release_id_variable: ORDERS_RELEASE
"""

RETURN = r"""
pip:
  description: >-
    The pip wheel pip ran from, or C(venv) when the host has none and the venv's own pip installed
    the release; empty when the release was already installed.
  type: str
  returned: always
venv:
  description: The release's virtual environment.
  type: str
  returned: always
"""

import glob
import json
import os
import shutil
import tarfile
import tempfile
import zipfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.compat.version import LooseVersion

INSTALLED_MARKER = ".installed"
ENVIRONMENT_FILE = "release.env"
DEFAULT_PIP_CACHE_DIR = "/var/cache/flask_app/pip"
# Debian's python3-pip-whl puts its wheels here, the ones its venv module installs from.
SYSTEM_WHEEL_DIR = "/usr/share/python-wheels"
# Run by the target Python: its paths are not the module's interpreter's.
WHEEL_DIRS_SCRIPT = ("import json, sysconfig; "
                     "print(json.dumps([sysconfig.get_config_var('WHEEL_PKG_DIR') or '', sysconfig.get_paths()['stdlib']]))")


class InstallError(Exception):
    """A step of the install failed; the message says which, with the command's output."""


def wheel_directories(module, python):
    """Where `python` keeps pip wheels, in the order to look: WHEEL_PKG_DIR, Debian's, ensurepip's bundle."""
    out = run(module, [python, "-c", WHEEL_DIRS_SCRIPT], "reading %s's wheel directories" % python)
    wheel_pkg_dir, stdlib = json.loads(out)
    return [d for d in (wheel_pkg_dir, SYSTEM_WHEEL_DIR, os.path.join(stdlib, "ensurepip", "_bundled")) if d]


def newest_pip_wheel(directories):
    """The newest pip wheel of the first directory holding one; empty when none does."""
    for directory in directories:
        wheels = glob.glob(os.path.join(glob.escape(directory), "pip-*.whl"))
        if wheels:
            return max(wheels, key=lambda path: LooseVersion(os.path.basename(path).split("-")[1]))
    return ""


def unpack(artifact, release_dir):
    """Unpack ARTIFACT as RELEASE_DIR, replacing what is there: root's (when root), read-only to others."""
    parent = os.path.dirname(release_dir)
    partial = tempfile.mkdtemp(prefix="." + os.path.basename(release_dir) + ".", dir=parent)
    try:
        with tarfile.open(artifact, "r:gz") as archive:
            for member in archive.getmembers():
                name = os.path.normpath(member.name)
                if not (member.isfile() or member.isdir()) or os.path.isabs(name) or name.split(os.sep)[0] == "..":
                    raise InstallError("%s: %s is not a plain file or directory inside the release"
                                       % (artifact, member.name))
                target = os.path.join(partial, name)
                if member.isdir():
                    os.makedirs(target, exist_ok=True)
                    continue
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with archive.extractfile(member) as source, open(target, "wb") as copy:
                    shutil.copyfileobj(source, copy)
                # u=rwX,go=rX: executable for all where the member was for anyone.
                os.chmod(target, 0o755 if member.mode & 0o111 else 0o644)
        for directory, subdirectories, files in os.walk(partial):
            os.chmod(directory, 0o755)
            if os.geteuid() == 0:
                for name in [*subdirectories, *files]:
                    os.lchown(os.path.join(directory, name), 0, 0)
        if os.geteuid() == 0:
            os.chown(partial, 0, 0)
        if os.path.lexists(release_dir):
            shutil.rmtree(release_dir)
        os.rename(partial, release_dir)
    except (OSError, tarfile.TarError) as error:
        raise InstallError("unpacking %s: %s" % (artifact, error))
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    os.unlink(artifact)


def unpacked_pip(module, python, wheel, cache_dir):
    """The directory holding `wheel` unpacked and byte-compiled by `python`, made the first time.

    Made under another name and renamed into place: a directory with the
    final name is complete. Its `pip` runs as the wheel's does (pip's
    __main__ puts the directory above it on sys.path).
    """
    target = os.path.join(cache_dir, os.path.basename(wheel)[:-len(".whl")])
    if os.path.isdir(target):
        return target
    os.makedirs(cache_dir, mode=0o755, exist_ok=True)
    partial = tempfile.mkdtemp(prefix=".partial-", dir=cache_dir)
    try:
        # The distribution's own wheel; zipfile keeps every member inside the directory.
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(partial)
        # -d: tracebacks name the files where they end up.
        run(module, [python, "-m", "compileall", "-q", "-d", target, partial], "byte-compiling %s" % wheel)
        os.chmod(partial, 0o755)
        try:
            os.rename(partial, target)
        except OSError:
            # Another install on this host made it meanwhile.
            if not os.path.isdir(target):
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def pip_install_args(release_dir):
    """Everything after `pip`: offline, only the release's wheels, each checked against its pinned hash."""
    return ["install", "--no-index", "--find-links=" + os.path.join(release_dir, "wheels"), "--only-binary=:all:",
            "--require-hashes", "--disable-pip-version-check",
            "--requirement=" + os.path.join(release_dir, "requirements.txt")]


def environment_content(variable, release_id):
    if variable:
        return "%s=%s\n" % (variable, release_id)
    return "# No release id variable (flask_app_release_id_variable)\n"


def write_root_file(path, content):
    """Replace `path` with `content`, root:root 0644, so that no reader sees half a file."""
    descriptor, partial = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=os.path.dirname(path))
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(content)
        # The role runs the module as root; a run as another user (a unit test) keeps its own, as pip's files do.
        if os.geteuid() == 0:
            os.chown(partial, 0, 0)
        os.chmod(partial, 0o644)
        os.rename(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def run(module, argv, what):
    rc, out, err = module.run_command(argv)
    if rc != 0:
        output = "\n".join(text.strip() for text in (out, err) if text.strip())
        raise InstallError("%s failed (exit code %d): %s" % (what, rc, output))
    return out


def installed(marker, release_id):
    try:
        with open(marker, encoding="utf-8") as handle:
            return handle.read() == release_id + "\n"
    except FileNotFoundError:
        return False


def install(module, release_dir, release_id, release_id_variable, python, check_mode,
            pip_cache_dir=DEFAULT_PIP_CACHE_DIR, artifact=""):
    """Install the release unless it is; return the module's result."""
    venv, marker = os.path.join(release_dir, "venv"), os.path.join(release_dir, INSTALLED_MARKER)
    if installed(marker, release_id):
        if artifact and os.path.exists(artifact):
            os.unlink(artifact)
        return {"changed": False, "pip": "", "venv": venv}
    pip_wheel = newest_pip_wheel(wheel_directories(module, python))
    result = {"changed": True, "pip": pip_wheel or "venv", "venv": venv}
    if check_mode:
        return result
    if artifact:
        unpack(artifact, release_dir)
    # A marker that names another release: this one is not installed until the end.
    if os.path.lexists(marker):
        os.unlink(marker)
    if pip_wheel:
        run(module, [python, "-m", "venv", "--without-pip", "--clear", venv], "creating %s" % venv)
        pip_dir = unpacked_pip(module, python, pip_wheel, pip_cache_dir)
        pip = [os.path.join(venv, "bin", "python"), os.path.join(pip_dir, "pip")]
    else:
        run(module, [python, "-m", "venv", "--clear", venv], "creating %s with pip" % venv)
        pip = [os.path.join(venv, "bin", "pip")]
    run(module, pip + pip_install_args(release_dir), "pip install")
    # The unit reads it through `current`, so the id follows the release it runs.
    write_root_file(os.path.join(release_dir, ENVIRONMENT_FILE), environment_content(release_id_variable, release_id))
    write_root_file(marker, release_id + "\n")
    return result


ARGUMENT_SPEC = {
    "release_dir": {"type": "path", "required": True},
    "artifact": {"type": "path", "default": ""},
    "release_id": {"type": "str", "required": True},
    "release_id_variable": {"type": "str", "default": ""},
    "python": {"type": "path", "default": "/usr/bin/python3"},
    "pip_cache_dir": {"type": "path", "default": DEFAULT_PIP_CACHE_DIR},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    try:
        result = install(module, params["release_dir"], params["release_id"], params["release_id_variable"],
                         params["python"], module.check_mode, params["pip_cache_dir"], params["artifact"])
    except InstallError as error:
        module.fail_json(msg="release %s: %s" % (params["release_id"], error))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
