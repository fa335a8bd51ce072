"""Writer for the leak tests: saves one file and pauses at a chosen phase of claiming it.

Run as ``python _claim_phases.py TARGET PHASE``.  It prints ``paused`` on
stdout when it reaches ``PHASE`` and then sleeps until it is killed:

``claim-tmp``
    the claim's temporary file ``<target>.claim.tmp-<pid>-<n>`` is written, the
    claim itself not yet made.
``writing``
    the claim is held and the partial file ``<target>.partial-<pid>-<n>`` holds data.
``clearer-moved``
    a stale claim was found and moved aside to ``<target>.claim.stale-<pid>-<n>``,
    not yet deleted.
``clearer-cleared``
    a stale claim was deleted; the files its dead holder left are still there.
``none``
    no pause: the save completes and the process exits 0.
"""

from __future__ import annotations

import os
import sys
import time
import warnings

import numpy as np

from h5stream.files import claims, create_atomic


def _pause() -> None:
    sys.stdout.write("paused\n")
    sys.stdout.flush()
    while True:
        time.sleep(60)


def install(phase: str) -> None:
    """Make this process pause at ``phase`` (it patches only this process)."""
    if phase == "claim-tmp":
        real_link = os.link

        def link(src, dst, *args, **kwargs):
            if ".claim.tmp-" in os.fspath(src):
                _pause()
            return real_link(src, dst, *args, **kwargs)

        os.link = link
    elif phase == "clearer-moved":
        real_unlink = os.unlink

        def unlink(path, *args, **kwargs):
            if ".claim.stale-" in os.fspath(path):
                _pause()
            return real_unlink(path, *args, **kwargs)

        os.unlink = unlink
    elif phase == "clearer-cleared":
        real_clear = claims.WriterClaim._clear_if_stale

        def clear(self, holder):
            cleared = real_clear(self, holder)
            if cleared:
                _pause()
            return cleared

        claims.WriterClaim._clear_if_stale = clear
    elif phase not in ("writing", "none"):
        raise SystemExit(f"unknown phase {phase!r}")


def save(target: str, phase: str) -> None:
    install(phase)
    warnings.simplefilter("ignore")  # stale-claim warnings of this helper are not under test
    with create_atomic(target, overwrite=True) as f:
        f["x"] = np.arange(1000, dtype=np.int64)
        f.flush()
        if phase == "writing":
            _pause()


if __name__ == "__main__":
    save(sys.argv[1], sys.argv[2])
