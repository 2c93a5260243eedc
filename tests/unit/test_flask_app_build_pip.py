"""flask_app_build: pip runs with the controller's own configuration, never a repository's index."""

import hashlib
import tarfile

import flask_app_build
import pytest


APP_WHEEL = "orders_api-1.2.0-py3-none-any.whl"
APP_WHEEL_CONTENT = b"the app's wheel"
PINS = "flask==3.1.3 --hash=sha256:" + "0" * 64


class RecordingModule:
    """Stands in for AnsibleModule: records the commands instead of running pip; `pip wheel` leaves an app wheel."""

    def __init__(self):
        self.calls = []

    def run_command(self, args, check_rc=False, environ_update=None):
        self.calls.append((list(args), dict(environ_update or {})))
        if args[2:4] == ["pip", "wheel"]:
            wheels = args[args.index("--wheel-dir") + 1]
            with open(f"{wheels}/{APP_WHEEL}", "wb") as wheel:
                wheel.write(APP_WHEEL_CONTENT)
        return 0, "", ""


@pytest.fixture
def build(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", "/etc/team/pip.conf")
    monkeypatch.setenv("PIP_INDEX_URL", "http://index.internal.test/simple")
    source = tmp_path / "app"
    source.mkdir()
    # No line break at the end: the app's pin goes on a line of its own all the same.
    (source / "requirements.txt").write_text(PINS)
    (source / "gunicorn.conf.py").write_text("workers = 2\n")
    destination = tmp_path / "out" / "release.tar.gz"
    destination.parent.mkdir()
    module = RecordingModule()
    extra_files = {flask_app_build.REQUIREMENTS_NAME: str(source / "requirements.txt"),
                   flask_app_build.GUNICORN_CONFIG_NAME: str(source / "gunicorn.conf.py")}
    flask_app_build.build_platform(module, str(source), extra_files, "/usr/bin/python3",
                                   {"python": "3.11", "arch": "x86_64", "glibc": "2.36"}, str(destination))
    return module, destination


def test_pip_keeps_the_controllers_configuration(build):
    module, _ = build
    assert [args[2:4] for args, _ in module.calls] == [["pip", "wheel"], ["pip", "download"]]
    for _, environ in module.calls:
        assert environ["PIP_CONFIG_FILE"] == "/etc/team/pip.conf"
        assert environ["PIP_INDEX_URL"] == "http://index.internal.test/simple"


def test_pip_commands_name_no_index(build):
    module, _ = build
    for args, _ in module.calls:
        assert not [arg for arg in args if arg.startswith(("--index-url", "--extra-index-url", "-i", "--no-index"))]
    download = module.calls[1][0]
    assert "--require-hashes" in download


def test_the_artifact_holds_what_the_hosts_install(build):
    _, destination = build
    with tarfile.open(destination) as release:
        assert {"gunicorn.conf.py", "requirements.txt", "wheels"} <= set(release.getnames())


def test_the_artifact_pins_the_app_s_wheel_by_its_hash(build):
    _, destination = build
    with tarfile.open(destination) as release:
        pins = release.extractfile("requirements.txt").read().decode().splitlines()
        assert release.getmember("wheels/" + APP_WHEEL).isfile()
    assert pins[0] == PINS
    assert pins[-1] == "orders_api==1.2.0 --hash=sha256:" + hashlib.sha256(APP_WHEEL_CONTENT).hexdigest()
