"""tests/support/demo_release.py: another release of the demo service, from the same text the same one."""

from tests.support.demo_release import demo_release
from tests.support.playbook import PROJECT_ROOT


def test_a_release_is_the_demo_app_with_the_text_added_to_its_views_and_no_tests(tmp_path):
    source = demo_release(tmp_path / "one", "\n# added\n")
    original = (PROJECT_ROOT / "app" / "src" / "hello_service" / "views.py").read_text()
    assert (source / "src" / "hello_service" / "views.py").read_text() == original + "\n# added\n"
    assert (source / "pyproject.toml").read_bytes() == (PROJECT_ROOT / "app" / "pyproject.toml").read_bytes()
    assert not (source / "tests").exists()
