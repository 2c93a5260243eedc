"""Another release of the demo service (app/): its source copied, with text added to one module.

A release's id is its content's hash, so each distinct text makes a release
of its own, and the same text the same release. The tests and the bench
roll these out.
"""

import shutil
from pathlib import Path

from tests.support.playbook import PROJECT_ROOT


def demo_release(directory, added: str) -> Path:
    """Copy app/ (less its tests and caches) to DIRECTORY/app, append ADDED to its views module; return the copy."""
    source = Path(directory) / "app"
    shutil.copytree(PROJECT_ROOT / "app", source, ignore=shutil.ignore_patterns("tests", "__pycache__", ".*"))
    views = source / "src" / "hello_service" / "views.py"
    views.write_text(views.read_text() + added)
    return source
