"""Warn when the original pipeline's distribution is installed beside this one.

This package's ``hdmea`` replaces the lab pipeline's (distribution ``hdmea``,
jiang-lab-retina/hdmea_processing) on purpose, but both cannot live in one
environment: an editable install of the original puts its source folder on the
path, where it may shadow ours or be shadowed; a wheel install of it writes its
files into the same ``site-packages/hdmea`` folder, mixing the two, and
uninstalling either then deletes files of the other.  ``import hdmea`` checks
once, from the installed distributions' metadata (no files are opened), and
warns with :class:`OriginalPipelineInstalledWarning` naming the other
distribution, its version and where it is installed.  How to switch between
the two is in ``docs/guide/from-hdmea-processing.md``.
"""

from __future__ import annotations

import importlib.metadata
import json
import warnings

from h5stream.errors import H5StreamWarning

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


def original_distribution() -> importlib.metadata.Distribution | None:
    """The installed distribution named ``hdmea``, if any (ours is named ``h5stream``)."""
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
