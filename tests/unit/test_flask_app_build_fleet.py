"""flask_app_build for a fleet of several releases: one build per distinct target, one release id."""

import json
import pathlib

import pytest
from ansible.module_utils.testing import patch_module_args

import flask_app_build

CONFIG = pathlib.Path(__file__).resolve().parents[2] / "roles" / "flask_app" / "files" / "gunicorn.conf.py"
# The targets of the supported releases, as each backend describes its own.
BOOKWORM = {"python": "3.11", "arch": "x86_64", "glibc": "2.36"}
TRIXIE = {"python": "3.13", "arch": "x86_64", "glibc": "2.41"}
NOBLE = {"python": "3.12", "arch": "x86_64", "glibc": "2.39"}


@pytest.fixture
def app(tmp_path):
    source = tmp_path / "app"
    (source / "orders_api").mkdir(parents=True)
    (source / "pyproject.toml").write_text('[project]\nname = "orders-api"\nversion = "1.0"\n')
    (source / "orders_api" / "__init__.py").write_text("")
    (source / "requirements.txt").write_text("flask==3.1.0 --hash=sha256:00\n")
    return source


@pytest.fixture
def builds(monkeypatch):
    """The platforms built, in order; each build leaves an artifact naming its platform."""
    built = []

    def build_platform(module, source_dir, extra_files, pip_python, platform, destination):
        built.append(dict(platform))
        pathlib.Path(destination).write_text(flask_app_build.platform_key(platform))

    monkeypatch.setattr(flask_app_build, "build_platform", build_platform)
    return built


def run(capsys, app, tmp_path, platforms):
    args = dict(source_dir=str(app), requirements=str(app / "requirements.txt"), gunicorn_config=str(CONFIG),
                build_root=str(tmp_path / "cache"), platforms=platforms, pip_python="/usr/bin/python3")
    with patch_module_args(args), pytest.raises(SystemExit):
        flask_app_build.main()
    return json.loads(capsys.readouterr().out)


def test_a_mixed_fleet_gets_one_build_per_distinct_target(capsys, app, tmp_path, builds):
    # Three backends of three releases and a fourth like the first, as the stage task passes them.
    result = run(capsys, app, tmp_path, [BOOKWORM, TRIXIE, NOBLE, dict(BOOKWORM)])
    assert builds == [BOOKWORM, TRIXIE, NOBLE]
    assert sorted(result["artifacts"]) == ["3.11-x86_64-glibc2.36", "3.12-x86_64-glibc2.39", "3.13-x86_64-glibc2.41"]
    assert result["changed"]


def test_each_target_s_artifact_is_its_own(capsys, app, tmp_path, builds):
    result = run(capsys, app, tmp_path, [BOOKWORM, TRIXIE, NOBLE])
    for key, path in result["artifacts"].items():
        assert pathlib.Path(path).read_text() == key
        assert pathlib.Path(path).parent.name == key


def test_the_release_id_does_not_depend_on_the_fleet(capsys, app, tmp_path, builds):
    # Rollback and the release listing compare ids across the fleet: one id for one source.
    alone = run(capsys, app, tmp_path / "one", [BOOKWORM])["release_id"]
    mixed = run(capsys, app, tmp_path / "mixed", [NOBLE, TRIXIE, BOOKWORM])["release_id"]
    assert alone == mixed
    for result_dir in ("one", "mixed"):
        assert [path.name for path in (tmp_path / result_dir / "cache").iterdir()] == [alone]


def test_a_release_upgrade_builds_only_the_new_target(capsys, app, tmp_path, builds):
    # A backend upgraded from Debian 12 to 13 in a fleet already deployed: the same release, one build more.
    first = run(capsys, app, tmp_path, [BOOKWORM, NOBLE])
    builds.clear()
    second = run(capsys, app, tmp_path, [TRIXIE, NOBLE])
    assert builds == [TRIXIE]
    assert second["release_id"] == first["release_id"]
    assert second["artifacts"]["3.12-x86_64-glibc2.39"] == first["artifacts"]["3.12-x86_64-glibc2.39"]


def test_a_re_run_on_a_mixed_fleet_builds_nothing(capsys, app, tmp_path, builds):
    run(capsys, app, tmp_path, [BOOKWORM, TRIXIE, NOBLE])
    builds.clear()
    assert not run(capsys, app, tmp_path, [BOOKWORM, TRIXIE, NOBLE])["changed"]
    assert builds == []


@pytest.mark.parametrize("platform, abi, newest_manylinux", [
    (BOOKWORM, "cp311", "manylinux_2_36_x86_64"),
    (TRIXIE, "cp313", "manylinux_2_41_x86_64"),
    (NOBLE, "cp312", "manylinux_2_39_x86_64"),
])
def test_pip_downloads_wheels_for_the_target_s_python_and_glibc(tmp_path, app, platform, abi, newest_manylinux):
    calls = []

    class Module:
        def run_command(self, args, check_rc=False, environ_update=None):
            calls.append(list(args))
            if args[2:4] == ["pip", "wheel"]:
                (pathlib.Path(args[args.index("--wheel-dir") + 1]) / "orders_api-1.0-py3-none-any.whl").write_bytes(b"")
            return 0, "", ""

    extra_files = {flask_app_build.REQUIREMENTS_NAME: str(app / "requirements.txt"),
                   flask_app_build.GUNICORN_CONFIG_NAME: str(CONFIG)}
    flask_app_build.build_platform(Module(), str(app), extra_files, "/usr/bin/python3", platform,
                                   str(tmp_path / "release.tar.gz"))
    download = calls[1]
    assert download[download.index("--python-version") + 1] == platform["python"]
    assert download[download.index("--abi") + 1] == abi
    assert download[download.index("--platform") + 1] == newest_manylinux
