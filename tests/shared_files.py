"""A test's own name for a large input it only reads: a hard link to the session's file, not a copy.

The session's synthetic recordings (``tiny``, ``tiny_recording`` in tests/conftest.py) hold 175 MB of raw
data each; a batch test that lays out four recordings under their own names copied 700 MB.  A hard link
gives the test its own path (its own name, folder and real path, which a batch takes as a recording's
identity) over the same bytes.  Only for a file that neither the test nor the code under test writes,
truncates or changes the mode of: a write through the link changes the session's file for every later
test.  A file the test damages, or writes over, is copied (``shutil.copyfile``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def link_read_only(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """``target`` as a hard link to ``source``; a copy where the file system has no hard links between them."""
    target = Path(target)
    try:
        os.link(source, target)
    except OSError:  # another file system, or one without hard links
        shutil.copyfile(source, target)
    return target
