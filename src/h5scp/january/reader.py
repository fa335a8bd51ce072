"""``reader``: the original ScpTensor's entry point for DIA-NN and Spectronaut reports.

At the commit this package follows (7f8a443) the original's ``reader`` was
declared and raised ``NotImplementedError``; it is kept with the same
signature and the same behaviour so that code importing it keeps importing.
Reading search-engine reports is part of the analysis toolkit, not of this
package.
"""

from __future__ import annotations

from typing import Literal

from h5scp.core.structures import ScpContainer

__all__ = ["reader"]


def reader(
    data_path: str,
    groups: dict[str, str],
    batch: dict[str, str],
    software: Literal["DIA-NN", "Spectronaut"],
) -> ScpContainer:
    """Not available, as in the original: raises ``NotImplementedError`` saying what to use instead."""
    raise NotImplementedError(
        "reader() was not implemented in the original ScpTensor either; build obs/var with polars from "
        f"the {software} report and pass them to ScpContainer, or use the original toolkit's readers"
    )
