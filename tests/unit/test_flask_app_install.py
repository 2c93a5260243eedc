"""flask_app_install: a release installed for real, offline, into a venv of this machine's Python.

The release holds two tiny wheels made here (an app and the dependency it
declares), pinned by hash as the build module pins them. The interpreter
running the tests stands in for the host's Python.
"""

import base64
import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args

import flask_app_install

RELEASE_ID = "3f2a9c1b7d04"


def make_wheel(directory, name, version, requires=()):
    """A pure-Python wheel holding module `name`, which sets VERSION; returns its path."""
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f"VERSION = {version!r}\n",
        f"{dist_info}/METADATA": "".join([f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"]
                                         + [f"Requires-Dist: {requirement}\n" for requirement in requires]),
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{dist_info}/RECORD"] = "\n".join(record + [f"{dist_info}/RECORD,,"]) + "\n"
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name_in_wheel, text in files.items():
            wheel.writestr(name_in_wheel, text)
    return path


def pin(wheel, name, version):
    return f"{name}=={version} --hash=sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}\n"


def unpacked_release(root):
    """An unpacked release: the app's wheel pinned last, as the build module writes requirements.txt."""
    release_dir = root / "releases" / RELEASE_ID
    wheels = release_dir / "wheels"
    wheels.mkdir(parents=True)
    dependency = make_wheel(wheels, "tinydep", "1.0")
    app = make_wheel(wheels, "tinyapp", "2.0", requires=["tinydep>=1"])
    (release_dir / "requirements.txt").write_text(pin(dependency, "tinydep", "1.0") + pin(app, "tinyapp", "2.0"))
    (release_dir / "gunicorn.conf.py").write_text("")
    return release_dir


@pytest.fixture
def release(tmp_path):
    return unpacked_release(tmp_path)


def run_module(**args):
    """The module's result, as Ansible reads it from its output."""
    output = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(output), pytest.raises(SystemExit):
        flask_app_install.main()
    return json.loads(output.getvalue())


def install(release_dir, **args):
    """The module on RELEASE_DIR, with pip's cache beside the releases (not the host's)."""
    args.setdefault("pip_cache_dir", str(release_dir.parent.parent / "pip-cache"))
    return run_module(release_dir=str(release_dir), release_id=RELEASE_ID, python=sys.executable, **args)


def venv_python(release_dir, code):
    return subprocess.run([str(release_dir / "venv" / "bin" / "python"), "-c", code], capture_output=True, text=True)


@pytest.fixture(scope="module")
def host_pip_wheel():
    """The pip wheel the module finds for this machine's Python; the tests that need one skip without it."""
    class Runner:
        def run_command(self, argv):
            done = subprocess.run(argv, capture_output=True, text=True)
            return done.returncode, done.stdout, done.stderr

    wheel = flask_app_install.newest_pip_wheel(flask_app_install.wheel_directories(Runner(), sys.executable))
    if not wheel:
        pytest.skip(f"{sys.executable} has no pip wheel to run pip from")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory, host_pip_wheel):
    """(release directory, result) of one real install over what a stopped install left: the tests below read it."""
    release_dir = unpacked_release(tmp_path_factory.mktemp("installed"))
    (release_dir / "venv" / "lib").mkdir(parents=True)
    (release_dir / "venv" / "lib" / "left-over").write_text("")
    (release_dir / ".installed").write_text("an earlier release\n")
    return release_dir, install(release_dir, release_id_variable="ORDERS_RELEASE")


def test_the_release_installs_with_pip_run_from_the_host_s_wheel(installed, host_pip_wheel):
    release_dir, result = installed
    assert (result["changed"], result["pip"]) == (True, host_pip_wheel)
    imported = venv_python(release_dir, "import tinyapp, tinydep; print(tinyapp.VERSION, tinydep.VERSION)")
    assert imported.stdout.split() == ["2.0", "1.0"], imported.stderr


def test_pip_runs_unpacked_and_byte_compiled_from_the_cache_made_once(installed, host_pip_wheel):
    release_dir, _ = installed
    cache = release_dir.parent.parent / "pip-cache"
    unpacked = cache / os.path.basename(host_pip_wheel).removesuffix(".whl")
    assert [entry.name for entry in cache.iterdir()] == [unpacked.name]
    assert list((unpacked / "pip" / "__pycache__").glob("__init__.*.pyc"))
    made = unpacked.stat().st_mtime_ns
    # Another release on the same host: pip comes from the same directory, which is not made again.
    other = release_dir.parent / "0a1b2c3d4e5f"
    shutil.copytree(release_dir, other, ignore=shutil.ignore_patterns("venv", ".installed", "release.env"))
    result = run_module(release_dir=str(other), release_id="0a1b2c3d4e5f", python=sys.executable,
                        pip_cache_dir=str(cache))
    assert result["changed"] is True
    assert venv_python(other, "import tinyapp; print(tinyapp.VERSION)").stdout.strip() == "2.0"
    assert unpacked.stat().st_mtime_ns == made and [entry.name for entry in cache.iterdir()] == [unpacked.name]


def test_the_venv_carries_no_pip(installed):
    release_dir, _ = installed
    assert not (release_dir / "venv" / "bin" / "pip").exists()
    assert venv_python(release_dir, "import pip").returncode != 0


def test_the_environment_and_the_marker_are_written_root_s_and_readable(installed):
    release_dir, _ = installed
    assert (release_dir / "release.env").read_text() == f"ORDERS_RELEASE={RELEASE_ID}\n"
    assert (release_dir / ".installed").read_text() == f"{RELEASE_ID}\n"
    for name in ("release.env", ".installed"):
        info = os.stat(release_dir / name)
        assert oct(info.st_mode & 0o777) == oct(0o644)
        assert (info.st_uid, info.st_gid) == ((0, 0) if os.geteuid() == 0 else (os.geteuid(), os.getegid()))


def test_a_half_done_install_is_redone_from_scratch(installed):
    release_dir, _ = installed
    assert not (release_dir / "venv" / "lib" / "left-over").exists()


def test_without_a_release_id_variable_the_environment_says_so():
    assert (flask_app_install.environment_content("", RELEASE_ID)
            == "# No release id variable (flask_app_release_id_variable)\n")


def test_without_a_pip_wheel_the_venv_s_own_pip_installs(release, monkeypatch):
    monkeypatch.setattr(flask_app_install, "wheel_directories", lambda module, python: [])
    result = install(release)
    assert (result["changed"], result["pip"]) == (True, "venv")
    assert (release / "venv" / "bin" / "pip").exists()
    assert venv_python(release, "import tinyapp").returncode == 0
    assert (release / ".installed").read_text() == f"{RELEASE_ID}\n"


def test_a_hash_mismatch_fails_with_pip_s_message(release, host_pip_wheel):
    requirements = release / "requirements.txt"
    pins = requirements.read_text().splitlines(keepends=True)
    requirements.write_text("".join(["tinydep==1.0 --hash=sha256:" + "0" * 64 + "\n"] + pins[1:]))
    result = install(release)
    assert result["failed"]
    assert result["msg"].startswith(f"release {RELEASE_ID}: pip install failed")
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in result["msg"]
    assert not (release / ".installed").exists()


def test_a_dependency_of_the_app_that_is_not_pinned_fails_the_install(release, host_pip_wheel):
    # The app is installed with its dependencies, not --no-deps: what it needs must be in requirements.txt.
    requirements = release / "requirements.txt"
    requirements.write_text(requirements.read_text().splitlines(keepends=True)[1])
    result = install(release)
    assert result["failed"]
    assert "tinydep>=1" in result["msg"] and "must have their versions pinned with ==" in result["msg"]


def test_check_mode_reports_the_install_and_does_nothing(release):
    before = sorted(path.name for path in release.iterdir())
    result = install(release, _ansible_check_mode=True)
    assert result["changed"]
    assert sorted(path.name for path in release.iterdir()) == before


def test_an_installed_release_is_left_as_it_is(release):
    (release / ".installed").write_text(f"{RELEASE_ID}\n")
    result = install(release)
    assert (result["changed"], result["pip"]) == (False, "")
    assert not (release / "venv").exists()


@pytest.fixture
def wheel_dirs(tmp_path):
    """The three places in the order the module asks: WHEEL_PKG_DIR, Debian's, ensurepip's bundle."""
    return [tmp_path / "wheel-pkg-dir", tmp_path / "python-wheels", tmp_path / "ensurepip" / "_bundled"]


def put_pips(directory, *versions):
    directory.mkdir(parents=True, exist_ok=True)
    for version in versions:
        (directory / f"pip-{version}-py3-none-any.whl").write_bytes(b"")
        (directory / f"setuptools-99.{version}-py3-none-any.whl").write_bytes(b"")


@pytest.mark.parametrize("present, expected", [
    ({0: ["9.0.1", "23.0.1"], 1: ["24.0"], 2: ["25.0"]}, (0, "23.0.1")),
    ({1: ["23.0.1", "23.10"], 2: ["25.0"]}, (1, "23.10")),
    ({2: ["23.2.1"]}, (2, "23.2.1")),
])
def test_the_first_place_with_a_pip_wheel_gives_its_newest(wheel_dirs, present, expected):
    for index, versions in present.items():
        put_pips(wheel_dirs[index], *versions)
    where, version = expected
    assert (flask_app_install.newest_pip_wheel([str(d) for d in wheel_dirs])
            == str(wheel_dirs[where] / f"pip-{version}-py3-none-any.whl"))


def test_no_pip_wheel_anywhere_gives_none(wheel_dirs):
    put_pips(wheel_dirs[0])
    assert flask_app_install.newest_pip_wheel([str(d) for d in wheel_dirs]) == ""


class RecordingRunner:
    """Answers the module's question to the target Python as a Python with these paths would."""

    def __init__(self, wheel_pkg_dir, stdlib):
        self.answer, self.calls = json.dumps([wheel_pkg_dir, stdlib]), []

    def run_command(self, argv):
        self.calls.append(argv)
        return 0, self.answer + "\n", ""


@pytest.mark.parametrize("wheel_pkg_dir", ["/usr/share/python-wheels/", ""])
def test_the_target_python_says_where_its_wheels_are(wheel_pkg_dir):
    runner = RecordingRunner(wheel_pkg_dir, "/opt/python3.13/lib/python3.13")
    directories = flask_app_install.wheel_directories(runner, "/opt/python3.13/bin/python3")
    assert runner.calls[0][:2] == ["/opt/python3.13/bin/python3", "-c"]
    assert directories == [d for d in (wheel_pkg_dir, "/usr/share/python-wheels",
                                       "/opt/python3.13/lib/python3.13/ensurepip/_bundled") if d]


def test_the_question_to_the_target_python_is_answered_by_it():
    done = subprocess.run([sys.executable, "-c", flask_app_install.WHEEL_DIRS_SCRIPT], capture_output=True, text=True)
    wheel_pkg_dir, stdlib = json.loads(done.stdout)
    assert os.path.isfile(os.path.join(stdlib, "ensurepip", "__init__.py"))


def test_the_documented_options_are_the_module_s():
    documented = yaml.safe_load(flask_app_install.DOCUMENTATION)["options"]
    assert {name: {key: option[key] for key in ("type", "required", "default") if key in option}
            for name, option in documented.items()} == flask_app_install.ARGUMENT_SPEC


def artifact_of(release_dir, path):
    """A .tar.gz of RELEASE_DIR's content, as the build module packs a release, at PATH."""
    with tarfile.open(path, "w:gz") as archive:
        for entry in sorted(release_dir.iterdir()):
            archive.add(entry, arcname=entry.name)
    return path


def test_the_artifact_is_unpacked_in_place_of_a_half_done_install_and_removed(tmp_path, host_pip_wheel):
    made = unpacked_release(tmp_path / "build")
    (made / "bin").mkdir()
    (made / "bin" / "tool").write_text("#!/bin/sh\n")
    (made / "bin" / "tool").chmod(0o700)
    release_dir = tmp_path / "opt" / "releases" / RELEASE_ID
    (release_dir / "wheels").mkdir(parents=True)
    (release_dir / "wheels" / "left-over.whl").write_text("")
    artifact = artifact_of(made, tmp_path / "opt" / "releases" / f"{RELEASE_ID}.tar.gz")
    result = install(release_dir, artifact=str(artifact))
    assert result["changed"] is True
    assert not artifact.exists()
    assert sorted(path.name for path in (release_dir / "wheels").iterdir()) == sorted(
        path.name for path in (made / "wheels").iterdir())
    assert venv_python(release_dir, "import tinyapp; print(tinyapp.VERSION)").stdout.strip() == "2.0"
    modes = {path.relative_to(release_dir).as_posix(): oct(path.stat().st_mode & 0o777)
             for path in [release_dir, release_dir / "wheels", release_dir / "requirements.txt", release_dir / "bin" / "tool"]}
    assert modes == {".": "0o755", "wheels": "0o755", "requirements.txt": "0o644", "bin/tool": "0o755"}
    # Nothing of the unpacking is left beside the release.
    assert sorted(path.name for path in release_dir.parent.iterdir()) == [RELEASE_ID]


@pytest.mark.parametrize("member", ["../outside", "/etc/outside", "link"])
def test_an_artifact_member_outside_the_release_or_not_a_plain_file_fails_the_install(tmp_path, member):
    releases = tmp_path / "opt" / "releases"
    releases.mkdir(parents=True)
    artifact = releases / f"{RELEASE_ID}.tar.gz"
    with tarfile.open(artifact, "w:gz") as archive:
        info = tarfile.TarInfo(member)
        if member == "link":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            archive.addfile(info)
        else:
            info.size = 1
            archive.addfile(info, io.BytesIO(b"x"))
    result = install(releases / RELEASE_ID, artifact=str(artifact))
    assert result["failed"] is True
    assert f"{member} is not a plain file or directory inside the release" in result["msg"]
    assert not (tmp_path / "opt" / "outside").exists() and not (releases / RELEASE_ID).exists()
    assert sorted(path.name for path in releases.iterdir()) == [f"{RELEASE_ID}.tar.gz"]
