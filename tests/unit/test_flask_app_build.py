"""flask_app_build: what makes a release, the app's name, and bad inputs, without building."""

import json
import pathlib

import pytest
from ansible.module_utils.testing import patch_module_args

import flask_app_build

CONFIG = pathlib.Path(__file__).resolve().parents[2] / "roles" / "flask_app" / "files" / "gunicorn.conf.py"


def write(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.fixture
def flat_app(tmp_path):
    """A flat layout: the package beside pyproject.toml, no src/."""
    source = tmp_path / "flat"
    write(source, {
        "pyproject.toml": '[project]\nname = "orders-api"\nversion = "1.0"\n',
        "orders_api/__init__.py": "def create_app():\n    pass\n",
        "requirements.txt": "flask==3.1.0 --hash=sha256:00\n",
        "tests/test_app.py": "def test(): pass\n",
    })
    return source


@pytest.fixture
def extra(flat_app, tmp_path):
    config = tmp_path / "gunicorn.conf.py"
    config.write_text("workers = 1\n", encoding="utf-8")
    return {"requirements.txt": str(flat_app / "requirements.txt"), "gunicorn.conf.py": str(config)}


def names(source, extra_files=None):
    return sorted(name for name, _ in flask_app_build.release_inputs(str(source), extra_files))


def test_a_flat_layout_s_code_makes_the_release(flat_app):
    assert names(flat_app) == ["orders_api/__init__.py", "pyproject.toml", "requirements.txt"]


def test_a_src_layout_s_code_makes_the_release(tmp_path):
    write(tmp_path, {"pyproject.toml": "", "src/pkg/__init__.py": "", "README.md": ""})
    assert names(tmp_path) == ["README.md", "pyproject.toml", "src/pkg/__init__.py"]


def test_tests_caches_builds_and_hidden_files_do_not(flat_app):
    write(flat_app, {
        "orders_api/__pycache__/x.pyc": "", "orders_api/x.pyc": "", ".venv/bin/python": "", ".git/HEAD": "",
        "build/lib/x.py": "", "dist/x.whl": "", "orders_api.egg-info/PKG-INFO": "", ".env": "", "test/x.py": "",
        "orders_api/views.py~": "",
    })
    assert names(flat_app) == ["orders_api/__init__.py", "pyproject.toml", "requirements.txt"]


def test_the_same_content_gives_the_same_id(flat_app, extra, tmp_path):
    copy = tmp_path / "copy"
    write(copy, {str(p.relative_to(flat_app)): p.read_text() for p in flat_app.rglob("*") if p.is_file()})
    assert flask_app_build.content_hash(str(flat_app), extra) == flask_app_build.content_hash(str(copy), extra)


def test_a_test_change_keeps_the_id(flat_app, extra):
    before = flask_app_build.content_hash(str(flat_app), extra)
    write(flat_app, {"tests/test_app.py": "def test(): assert False\n"})
    assert flask_app_build.content_hash(str(flat_app), extra) == before


@pytest.mark.parametrize("change", ["code", "requirements", "gunicorn config"])
def test_a_change_to_what_runs_changes_the_id(flat_app, extra, change):
    before = flask_app_build.content_hash(str(flat_app), extra)
    path = {"code": flat_app / "orders_api" / "__init__.py", "requirements": pathlib.Path(extra["requirements.txt"]),
            "gunicorn config": pathlib.Path(extra["gunicorn.conf.py"])}[change]
    path.write_text(path.read_text() + "# changed\n", encoding="utf-8")
    assert flask_app_build.content_hash(str(flat_app), extra) != before


def test_a_requirements_file_outside_the_source_counts(flat_app, extra, tmp_path):
    outside = tmp_path / "pins.txt"
    outside.write_text("flask==3.1.1 --hash=sha256:11\n", encoding="utf-8")
    assert (flask_app_build.content_hash(str(flat_app), dict(extra, **{"requirements.txt": str(outside)}))
            != flask_app_build.content_hash(str(flat_app), extra))


def test_the_project_name_comes_from_pyproject(flat_app):
    assert flask_app_build.project_name(str(flat_app)) == "orders-api"


@pytest.mark.parametrize("text", ["[project]\nversion = '1'\n", "[project]\nname = 'a b'\n", "[project\n", ""])
def test_a_pyproject_without_a_valid_name_is_refused(tmp_path, text):
    (tmp_path / "pyproject.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="pyproject.toml"):
        flask_app_build.project_name(str(tmp_path))


def run_module(capsys, **args):
    with patch_module_args(args), pytest.raises(SystemExit):
        flask_app_build.main()
    return json.loads(capsys.readouterr().out)


def module_args(source, requirements, tmp_path, **overrides):
    return dict(dict(source_dir=str(source), requirements=str(requirements), gunicorn_config=str(CONFIG),
                     build_root=str(tmp_path / "cache"), platforms=[], pip_python="/usr/bin/python3"), **overrides)


def test_a_source_without_pyproject_is_refused(capsys, tmp_path, flat_app):
    result = run_module(capsys, **module_args(tmp_path / "nowhere", flat_app / "requirements.txt", tmp_path))
    assert result["failed"] and "holds no pyproject.toml" in result["msg"]


def test_a_missing_requirements_file_is_named(capsys, tmp_path, flat_app):
    result = run_module(capsys, **module_args(flat_app, tmp_path / "absent.txt", tmp_path))
    assert result["failed"] and result["msg"] == f"flask_app_requirements_file={tmp_path / 'absent.txt'} is not a file"


def test_the_release_id_and_project_without_platforms(capsys, tmp_path, flat_app):
    result = run_module(capsys, **module_args(flat_app, flat_app / "requirements.txt", tmp_path))
    assert result["project"] == "orders-api"
    assert result["release_id"] == result["content_hash"][:12]
    assert (result["changed"], result["artifacts"]) == (False, {})


APP_PINS = """flask==3.1.0 \\
    --hash=sha256:00
prometheus_client==0.20.0 \\
    --hash=sha256:11
"""
ROLE_PINS = """# the role's
prometheus-client==0.26.0 \\
    --hash=sha256:22
other-lib[extra]==1.0 \\
    --hash=sha256:33
"""


def test_role_requirements_join_the_apps():
    merged = flask_app_build.merge_requirements("flask==3.1.0 \\\n    --hash=sha256:00\n", ROLE_PINS)
    assert "prometheus-client==0.26.0 \\\n    --hash=sha256:22\n" in merged
    assert "other-lib[extra]==1.0 \\\n    --hash=sha256:33\n" in merged
    assert merged.startswith("flask==3.1.0")


def test_a_project_the_app_pins_keeps_the_apps_pin():
    merged = flask_app_build.merge_requirements(APP_PINS, ROLE_PINS)
    assert "sha256:22" not in merged and "0.26.0" not in merged
    assert "prometheus_client==0.20.0" in merged and "sha256:33" in merged


def test_role_requirements_change_the_release_id(flat_app, extra, tmp_path):
    role = tmp_path / "role-requirements.txt"
    role.write_text(ROLE_PINS, encoding="utf-8")
    with_role = dict(extra, **{flask_app_build.ROLE_REQUIREMENTS_NAME: str(role)})
    before = flask_app_build.content_hash(str(flat_app), with_role)
    role.write_text(ROLE_PINS.replace("0.26.0", "0.27.0"), encoding="utf-8")
    assert flask_app_build.content_hash(str(flat_app), with_role) != before
