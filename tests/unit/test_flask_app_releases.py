"""Which releases pruning removes from a host."""

from flask_app_releases import releases_to_prune

# Newest first, as flask_app_release's inspect lists them.
INSTALLED = ["r6", "r5", "r4", "r3", "r2", "r1"]


def test_releases_beyond_the_number_kept_are_removed():
    assert releases_to_prune(INSTALLED, 3) == ["r3", "r2", "r1"]


def test_the_staged_release_counts_as_the_newest():
    assert releases_to_prune(INSTALLED, 3, staged="r7") == ["r4", "r3", "r2", "r1"]


def test_current_previous_and_staged_are_never_removed():
    assert releases_to_prune(INSTALLED, 2, staged="r1", current="r2", previous="r3") == ["r5", "r4"]


def test_the_fleet_s_last_good_release_is_never_removed():
    assert releases_to_prune(INSTALLED, 3, protected=["r1"]) == ["r3", "r2"]


def test_nothing_is_removed_within_the_number_kept():
    assert releases_to_prune(["r2", "r1"], 5, staged="r3") == []
