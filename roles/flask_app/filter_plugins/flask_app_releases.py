# -*- coding: utf-8 -*-
"""Which installed releases pruning removes."""

from __future__ import annotations


def releases_to_prune(installed, keep, staged="", current="", previous="", protected=()):
    """The release ids to remove from a host, oldest last.

    installed: the host's release ids, newest first (flask_app_release's
    inspect returns them so). The staged release counts as the newest: it
    may have just been installed. The keep newest are kept, and so are,
    whatever their age, the staged, current and previous releases and the
    protected ones (the release of the fleet's last good deploy): a run that
    fails again and again never prunes what the fleet could go back to.
    """
    keep = max(int(keep), 0)
    ordered = list(dict.fromkeys(([staged] if staged else []) + list(installed)))
    never = {release for release in (staged, current, previous, *protected) if release}
    return [release for release in ordered[keep:] if release not in never]


class FilterModule:
    def filters(self):
        return {"flask_app_releases_to_prune": releases_to_prune}
