#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Build an app's release artifact on the controller, once per release."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: flask_app_build
short_description: Build a release artifact (the app wheel plus pinned dependency wheels)
description:
  - Derives the release id from the content of the app's source directory
    (any pyproject.toml project, src/ or flat layout; tests, hidden files and
    build outputs left out), its pinned requirements and the Gunicorn
    configuration, so the same content always gives the same id and a re-run
    builds nothing.
  - For each target platform (Python version, CPU and glibc) builds one tarball holding
    the app's wheel, wheels of every pinned dependency for that platform,
    the hashed requirements file, with the app's own wheel pinned by its hash
    at the end, and gunicorn.conf.py. Hosts install it with one
    pip --no-index --require-hashes run, so they never need a package index
    and install no wheel that is not the one built.
  - A run that builds a release then keeps the O(keep) most recently used
    releases in O(build_root) and removes the others, except those used in
    the last 30 minutes or being built by another run. One run prunes at a
    time. A run that builds nothing removes nothing, so that a re-run soon
    after a run changes nothing, however old the other cached releases are.
  - Runs on the controller (delegate_to localhost, run_once).
options:
  source_dir:
    description: Directory holding the app's pyproject.toml and its code.
    type: path
    required: true
  requirements:
    description: The app's runtime requirements, each pinned with --hash; shipped as requirements.txt.
    type: path
    required: true
  gunicorn_config:
    description: Gunicorn configuration file shipped with the release as gunicorn.conf.py.
    type: path
    required: true
  role_requirements:
    description:
      - What the role's Gunicorn configuration needs at run time (the Prometheus client), pinned with --hash.
      - Added to the app's requirements, except a project the app pins itself, whose pin wins.
    type: path
  build_root:
    description: Cache directory; artifacts go to build_root/<release_id>/<platform key>/.
    type: path
    required: true
  keep:
    description:
      - Releases kept in O(build_root), the one being deployed included; the others
        are removed, oldest use first, by a run that builds a release. V(0) keeps every release.
      - Only directories named like a release id are ever removed. In check mode,
        RV(pruned) lists what a run would remove.
    type: int
    default: 0
  platforms:
    description: Target platforms, each with C(python) ("3.11"), C(arch) ("x86_64") and C(glibc) ("2.36").
    type: list
    elements: dict
    required: true
  pip_python:
    description: Python interpreter on the controller whose pip builds and downloads wheels.
    type: path
    required: true
"""

RETURN = r"""
release_id:
  description: The release id, the first 12 hex digits of the content hash.
  type: str
  returned: always
project:
  description: The distribution name in the app's pyproject.toml, which hosts install from the artifact.
  type: str
  returned: always
artifacts:
  description: Tarball path per platform key "<python>-<arch>-glibc<glibc>".
  type: dict
  returned: always
pruned:
  description: Release ids removed from O(build_root) by this run.
  type: list
  elements: str
  returned: always
"""

import fcntl
import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

# What in the source directory does not make the release: tests, caches,
# build outputs, virtual environments, hidden files and editor files do not
# change what runs, so they do not change the id.
IGNORED_DIRS = {"tests", "test", "build", "dist", "venv", "__pycache__", "node_modules"}
IGNORED_SUFFIXES = (".pyc", ".pyo", "~", ".swp")
# Names of the files the artifact carries beside the wheels.
REQUIREMENTS_NAME = "requirements.txt"
ROLE_REQUIREMENTS_NAME = "role-requirements.txt"
GUNICORN_CONFIG_NAME = "gunicorn.conf.py"
# The artifact's name in the cache says its format: this one's requirements.txt pins the app
# too. An artifact the build made before that, cached under the same release id, is rebuilt
# rather than installed without the app; pruning takes it for a failed build.
ARTIFACT_NAME = "release-2.tar.gz"
# How long a build waits for another build of the same release (pip downloads included).
LOCK_TIMEOUT_SECONDS = 1800
# What a release directory in the cache is called: the only names pruning removes.
RELEASE_ID = re.compile(r"[0-9a-f]{12}")
# A release used this recently stays whatever O(keep) says: a run may be copying it to hosts.
PRUNE_GRACE_SECONDS = LOCK_TIMEOUT_SECONDS


def _ignored_dir(name):
    return name.startswith(".") or name in IGNORED_DIRS or name.endswith(".egg-info")


def release_inputs(source_dir, extra_files=None):
    """Yield (name, absolute path) of every file that makes the release.

    The source tree's files are named by their path in it; extra_files (name
    to path) are the files the artifact carries under those names.
    """
    for dirpath, dirnames, filenames in os.walk(source_dir):
        dirnames[:] = sorted(d for d in dirnames if not _ignored_dir(d))
        for filename in sorted(filenames):
            if filename.startswith(".") or filename.endswith(IGNORED_SUFFIXES):
                continue
            path = os.path.join(dirpath, filename)
            yield os.path.relpath(path, source_dir), path
    for name, path in sorted((extra_files or {}).items()):
        # Apart from the tree's own files, whatever their names.
        yield "\0" + name, path


def content_hash(source_dir, extra_files=None):
    digest = hashlib.sha256()
    for relpath, path in sorted(release_inputs(source_dir, extra_files)):
        digest.update(relpath.encode() + b"\0")
        with open(path, "rb") as handle:
            digest.update(hashlib.sha256(handle.read()).digest())
    return digest.hexdigest()


def project_name(source_dir):
    """The distribution name in pyproject.toml's [project] table; ValueError says what is wrong."""
    path = os.path.join(source_dir, "pyproject.toml")
    try:
        import tomllib
    except ImportError:  # Python < 3.11 on the controller
        try:
            import tomli as tomllib
        except ImportError:
            raise ValueError("reading %s needs Python 3.11 or later (tomllib), or the tomli package" % path)
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ValueError("%s cannot be read: %s" % (path, error))
    name = data.get("project", {}).get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", name):
        raise ValueError("%s has no valid [project] name, got %r" % (path, name))
    return name


def manylinux_tags(arch, glibc):
    """All manylinux tags a host with this glibc can run (pip does not expand them itself)."""
    major, minor = (int(part) for part in glibc.split(".")[:2])
    tags = ["manylinux_%d_%d_%s" % (major, m, arch) for m in range(minor, 4, -1)]
    return tags + ["manylinux2014_%s" % arch, "manylinux2010_%s" % arch, "manylinux1_%s" % arch, "linux_%s" % arch]


def deterministic(tarinfo):
    tarinfo.uid = tarinfo.gid = 0
    tarinfo.uname = tarinfo.gname = "root"
    tarinfo.mtime = 0
    return tarinfo


def requirement_name(line):
    """The normalised project name a requirements line pins, or None for a comment, option or continuation."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^]]*\])?\s*(==|>=|<=|~=|!=|===|<|>|@|;|\\|$)", line)
    if not match or line.lstrip().startswith(("#", "-")):
        return None
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def merge_requirements(app_text, role_text):
    """The app's requirements, then the role's for every project the app does not pin itself.

    A requirement spans its line and the indented --hash lines after it.
    """
    pinned = {name for name in map(requirement_name, app_text.splitlines()) if name}
    kept, keep = [], False
    for line in role_text.splitlines():
        name = requirement_name(line) if line[:1] not in (" ", "\t") else None
        if name:
            keep = name not in pinned
        elif line[:1] not in (" ", "\t"):
            keep = False  # comments between requirements belong to none
        if keep:
            kept.append(line)
    merged = app_text if app_text.endswith("\n") or not app_text else app_text + "\n"
    if kept:
        merged += "# What the role's Gunicorn configuration needs, not pinned by the app.\n" + "\n".join(kept) + "\n"
    return merged


def pin_app_wheel(requirements, wheels, output):
    """Write `requirements` to `output` with a line pinning the one wheel in `wheels`, the app's, by its hash.

    The wheel's file name gives the distribution and version as the build
    backend wrote them (a dynamic version included).
    """
    (wheel,) = [name for name in os.listdir(wheels) if name.endswith(".whl")]
    name, version = wheel.split("-")[:2]
    with open(os.path.join(wheels, wheel), "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    with open(requirements, encoding="utf-8") as handle:
        pins = handle.read()
    with open(output, "w", encoding="utf-8") as handle:
        handle.write(pins if pins.endswith("\n") or not pins else pins + "\n")
        handle.write("# The app, built from the release's source.\n%s==%s --hash=sha256:%s\n" % (name, version, digest))


def build_platform(module, source_dir, extra_files, pip_python, platform, destination):
    python = str(platform["python"])
    abi = "cp" + python.replace(".", "")
    workdir = tempfile.mkdtemp(prefix="flask-app-build-")
    try:
        wheels = os.path.join(workdir, "wheels")
        os.makedirs(wheels)
        # pip keeps the controller's own configuration (index, proxy, certificates): teams behind a
        # mirror use theirs. The hashes in requirements.txt decide what a release holds, whatever serves it.
        env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
        module.run_command([pip_python, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", wheels, source_dir],
                           check_rc=True, environ_update=env)
        dependencies = extra_files[REQUIREMENTS_NAME]
        if ROLE_REQUIREMENTS_NAME in extra_files:
            dependencies = os.path.join(workdir, "dependencies.txt")
            with open(extra_files[REQUIREMENTS_NAME], encoding="utf-8") as app, \
                    open(extra_files[ROLE_REQUIREMENTS_NAME], encoding="utf-8") as role, \
                    open(dependencies, "w", encoding="utf-8") as merged:
                merged.write(merge_requirements(app.read(), role.read()))
        # Pinned while the app's is the only wheel there; hosts install all of them with one pip run.
        pin_app_wheel(dependencies, wheels, os.path.join(workdir, REQUIREMENTS_NAME))
        command = [pip_python, "-m", "pip", "download", "--only-binary=:all:", "--require-hashes",
                   "--python-version", python, "--implementation", "cp", "--abi", abi, "--abi", "abi3",
                   "--abi", "none", "--dest", wheels, "--requirement", dependencies]
        for tag in manylinux_tags(platform["arch"], str(platform["glibc"])):
            command += ["--platform", tag]
        module.run_command(command, check_rc=True, environ_update=env)
        if dependencies != extra_files[REQUIREMENTS_NAME]:
            os.unlink(dependencies)  # in requirements.txt now; not part of the artifact
        for name, path in extra_files.items():
            if name not in (REQUIREMENTS_NAME, ROLE_REQUIREMENTS_NAME):
                shutil.copy2(path, os.path.join(workdir, name))
        # A name of its own, so that nothing but a finished artifact ever has the final name.
        descriptor, partial = tempfile.mkstemp(prefix=ARTIFACT_NAME + ".", suffix=".partial",
                                               dir=os.path.dirname(destination))
        try:
            with os.fdopen(descriptor, "wb") as output, tarfile.open(fileobj=output, mode="w:gz") as tar:
                for name in sorted(os.listdir(workdir)):
                    tar.add(os.path.join(workdir, name), arcname=name, filter=deterministic)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(partial, 0o666 & ~umask)  # as open() would have made it; mkstemp makes 0600
            os.rename(partial, destination)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def build_once(module, source_dir, extra_files, pip_python, platform, destination):
    """Build the artifact unless it exists; return whether this run built it.

    Two playbook runs deploying the same source at once (two inventories, two
    CI jobs) take turns on a lock next to the artifact: the second one waits,
    then finds the first one's artifact instead of building it again.
    """
    directory = os.path.dirname(destination)
    os.makedirs(directory, exist_ok=True)
    lock_path = destination + ".lock"
    with open(lock_path, "a") as lock:
        deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    module.fail_json(msg="another build of this release has held %s for over %d s; if no build is "
                                         "running, remove the file" % (lock_path, LOCK_TIMEOUT_SECONDS))
                time.sleep(1)
        if os.path.isfile(destination):
            return False
        # Left by a build that was killed while it wrote; nothing else writes here while the lock is held.
        for name in os.listdir(directory):
            if name.startswith(ARTIFACT_NAME + ".") and name.endswith(".partial"):
                os.unlink(os.path.join(directory, name))
        build_platform(module, source_dir, extra_files, pip_python, platform, destination)
        return True


def platform_key(platform):
    """Artifacts differ by Python version, CPU and glibc (the manylinux wheels it can run)."""
    return "%s-%s-glibc%s" % (platform["python"], platform["arch"], platform["glibc"])


def last_use(directory):
    """When a run last used this release (its stamp), or None once it is gone."""
    try:
        return os.stat(directory).st_mtime
    except FileNotFoundError:
        return None


def has_artifact(directory):
    return any(ARTIFACT_NAME in names for _, _, names in os.walk(directory))


def remove_unless_in_use(directory, seen_use):
    """Remove a release's directory unless a run builds it or stamped it since `seen_use`.

    Holds every build lock of the release while it checks and removes, so no
    build starts in it meanwhile. Returns whether it removed the directory.
    """
    held = []
    try:
        for dirpath, _, filenames in os.walk(directory):
            for filename in filenames:
                if filename.endswith(".lock"):
                    try:
                        lock = open(os.path.join(dirpath, filename), "r")
                    except FileNotFoundError:
                        return False
                    held.append(lock)
                    try:
                        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        return False
        if last_use(directory) != seen_use:
            return False
        # Out of the cache's names first, so that no run finds a half-removed release.
        trash = tempfile.mkdtemp(prefix=".pruned-", dir=os.path.dirname(directory))
        os.rename(directory, os.path.join(trash, os.path.basename(directory)))
        shutil.rmtree(trash)
        return True
    finally:
        for lock in held:
            lock.close()


def prune_candidates(build_root, keep, release_id):
    """(id, last use) of the releases beyond the `keep` used last, oldest use first, minus recent ones.

    Every run stamps the release it deploys, so a redeploy of an old release
    counts as recent. Releases without an artifact (a failed build) go first.
    """
    releases = []
    for name in os.listdir(build_root):
        directory = os.path.join(build_root, name)
        used = last_use(directory)
        if RELEASE_ID.fullmatch(name) and used is not None and os.path.isdir(directory):
            releases.append((name == release_id, has_artifact(directory), used, name))
    if not any(deployed for deployed, _, _, _ in releases):
        # A dry run before the build: the release it would build takes the first place kept.
        releases.append((True, True, time.time(), release_id))
    releases.sort(reverse=True)
    recent = time.time() - PRUNE_GRACE_SECONDS
    return [(name, used) for _, _, used, name in reversed(releases[keep:]) if used <= recent]


def prune(build_root, keep, release_id):
    """Remove the prune candidates that no run uses now; return their ids.

    Nothing is pruned while another run prunes the same cache.
    """
    with open(os.path.join(build_root, ".prune.lock"), "a") as prune_lock:
        try:
            fcntl.flock(prune_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return []
        return sorted(name for name, used in prune_candidates(build_root, keep, release_id)
                      if remove_unless_in_use(os.path.join(build_root, name), used))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            source_dir=dict(type="path", required=True),
            requirements=dict(type="path", required=True),
            gunicorn_config=dict(type="path", required=True),
            role_requirements=dict(type="path"),
            build_root=dict(type="path", required=True),
            platforms=dict(type="list", elements="dict", required=True),
            pip_python=dict(type="path", required=True),
            keep=dict(type="int", default=0),
        ),
        supports_check_mode=True,
    )
    source_dir = module.params["source_dir"]
    if module.params["keep"] < 0:
        module.fail_json(msg="keep must be 0 (keep every release) or more, got keep=%d" % module.params["keep"])
    if not os.path.isfile(os.path.join(source_dir, "pyproject.toml")):
        module.fail_json(msg="flask_app_source_dir=%s holds no pyproject.toml: it must point at the app's source "
                             "directory" % source_dir)
    extra_files = {REQUIREMENTS_NAME: module.params["requirements"], GUNICORN_CONFIG_NAME: module.params["gunicorn_config"]}
    if module.params["role_requirements"]:
        extra_files[ROLE_REQUIREMENTS_NAME] = module.params["role_requirements"]
    for option, path in (("flask_app_requirements_file", module.params["requirements"]),
                         ("gunicorn_config", module.params["gunicorn_config"]),
                         ("role_requirements", module.params["role_requirements"] or module.params["gunicorn_config"])):
        if not os.path.isfile(path):
            module.fail_json(msg="%s=%s is not a file" % (option, path))
    try:
        project = project_name(source_dir)
    except ValueError as error:
        module.fail_json(msg="flask_app_source_dir: %s" % error)

    digest = content_hash(source_dir, extra_files)
    release_id = digest[:12]
    build_root = module.params["build_root"]
    release_dir = os.path.join(build_root, release_id)
    if not module.check_mode and os.path.isdir(release_dir):
        # The last use, which pruning goes by; early, so that no other run prunes it now. A release built
        # by this run needs no stamp: creating its platform directory set its time.
        os.utime(release_dir)
    artifacts, changed = {}, False
    for platform in module.params["platforms"]:
        key = platform_key(platform)
        destination = os.path.join(release_dir, key, ARTIFACT_NAME)
        artifacts[key] = destination
        if os.path.isfile(destination):
            continue
        if module.check_mode:
            changed = True
            continue
        changed = build_once(module, source_dir, extra_files, module.params["pip_python"], platform, destination) or changed

    # Pruning goes with a build: it keeps the cache's size bounded, and a run
    # that builds nothing stays a run that changes nothing. Pruning on every
    # run made a re-run report a change whenever another release's last use
    # passed the 30-minute grace between the two runs.
    pruned = []
    if changed and module.params["keep"] > 0 and os.path.isdir(build_root):
        if module.check_mode:
            pruned = sorted(name for name, _ in prune_candidates(build_root, module.params["keep"], release_id))
        else:
            pruned = prune(build_root, module.params["keep"], release_id)
    module.exit_json(changed=changed or bool(pruned), release_id=release_id, project=project, content_hash=digest,
                     artifacts=artifacts, pruned=pruned)


if __name__ == "__main__":
    main()
