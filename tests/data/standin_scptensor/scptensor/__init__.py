"""Stand-in for upstream ScpTensor (see README.md beside this package): its shape, none of its code."""

__version__ = "0.1.0"

from scptensor.core.structures import Assay, ScpContainer, ScpMatrix  # noqa: E402

__all__ = ["Assay", "ScpContainer", "ScpMatrix"]
