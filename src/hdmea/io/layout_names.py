"""Names in the recording layout that several readers look up.

The receptive field (STA) of ``units/<u>/features/sta_<movie>`` is the dataset
``data``, where the original pipeline's session mode puts it and the lab's
readers look for it; files written by earlier versions of this package call it
``sta``.  Readers take the first of :data:`STA_DATASETS` present.
"""

from __future__ import annotations

from collections.abc import Container

__all__ = ["STA_DATASET", "STA_DATASETS", "sta_dataset"]

#: The name the STA step writes.
STA_DATASET = "data"
#: Names readers accept, newest first.
STA_DATASETS = ("data", "sta")


def sta_dataset(group: Container[str]) -> str | None:
    """The name of the STA dataset in a ``sta_<movie>`` feature group (anything with ``in``), or None."""
    for name in STA_DATASETS:
        if name in group:
            return name
    return None
