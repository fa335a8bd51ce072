"""Warn when the original pipeline's distribution is installed beside this one.

This package's ``hdmea`` replaces the lab pipeline's (distribution ``hdmea``,
jiang-lab-retina/hdmea_processing) on purpose, but both cannot live in one
environment: an editable install of the original puts its source folder on the
path, where it may shadow ours or be shadowed; a wheel install of it writes its
files into the same ``site-packages/hdmea`` folder, mixing the two, and
uninstalling either then deletes files of the other.  ``import hdmea`` checks
once, from the installed distributions' metadata folders (a listing of each
folder on ``sys.path``; no file is opened unless one is named ``hdmea``), and
warns with :class:`OriginalPipelineInstalledWarning` naming the other
distribution, its version and where it is installed.  How to switch between
the two is in ``docs/guide/from-hdmea-processing.md``.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from typing import TYPE_CHECKING

from h5stream.errors import H5StreamWarning

if TYPE_CHECKING:
    import importlib.metadata

__all__ = ["OriginalPipelineInstalledWarning", "original_distribution", "warn_if_original_installed"]

#: The original pipeline's distribution name (its pyproject's ``name``).
ORIGINAL_DISTRIBUTION = "hdmea"


class OriginalPipelineInstalledWarning(H5StreamWarning):
    """The original pipeline's distribution ``hdmea`` is installed in the same environment as this package."""


def _location(dist: importlib.metadata.Distribution) -> tuple[str, bool]:
    """(where the distribution's files are, whether it is an editable install)."""
    text = dist.read_text("direct_url.json")
    if text:
        try:
            info = json.loads(text)
        except ValueError:
            info = {}
        if isinstance(info, dict) and info.get("dir_info", {}).get("editable"):
            return str(info.get("url", "")).removeprefix("file://"), True
    return str(dist.locate_file("")), False


def _metadata_folder_listed() -> bool:
    """Whether a folder on ``sys.path`` holds a metadata folder of a distribution named ``hdmea``
    (``hdmea-<version>.dist-info``, ``hdmea-<version>.egg-info`` or ``hdmea.egg-info``, any case), found
    the way :mod:`importlib.metadata` finds them; listing the folders costs a fraction of importing :mod:`importlib.metadata`."""
    for entry in sys.path:
        try:
            with os.scandir(entry or ".") as it:
                for item in it:
                    name = item.name.lower()
                    if (name.endswith((".dist-info", ".egg-info"))
                            and name.split("-")[0].removesuffix(".egg") == ORIGINAL_DISTRIBUTION):
                        return True
        except OSError:  # not a folder (a zip file, a missing entry)
            continue
    return False


def original_distribution() -> importlib.metadata.Distribution | None:
    """The installed distribution named ``hdmea``, if any (ours is named ``h5stream``)."""
    if not _metadata_folder_listed():
        return None
    import importlib.metadata  # only where a candidate is listed

    try:
        return importlib.metadata.distribution(ORIGINAL_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def warn_if_original_installed() -> None:
    dist = original_distribution()
    if dist is None:
        return
    where, editable = _location(dist)
    how = (f"an editable install from {where}, whose source folder may shadow this package's hdmea (or be shadowed)"
           if editable else f"a wheel install into {where}, whose files share the folder hdmea/ with this package's")
    warnings.warn(
        f"the lab pipeline's distribution {ORIGINAL_DISTRIBUTION!r} {dist.version} is installed in this environment "
        f"({how}); this package (distribution 'h5stream') provides hdmea in its place. Uninstall it "
        f"(pip uninstall {ORIGINAL_DISTRIBUTION}) and reinstall h5stream, or use separate environments: "
        "see docs/guide/from-hdmea-processing.md, 'Switching installations'",
        OriginalPipelineInstalledWarning, stacklevel=3,
    )
