"""What a batch's finished-marker check costs per recording (``hdmea batch`` skipping a finished output).

``python -m benchmarks.studies.marker_check_cost [--rounds N]`` from the repository root.  On one tiny synthetic
recording, finished by :func:`hdmea.pipeline.batch.run_job`, it times (minimum and median of ``N``):

* ``identity``: :func:`~hdmea.pipeline.batch.recordings.recording_identity` of the recording's two
  inputs (their first and last 64 KiB and 14 blocks of 4 KiB between, digested), from the page cache
  and with both inputs' pages dropped first (the disk's latency, as on a node that never read them);
* ``identity, 1 GiB input``: the same of a 1 GiB ``.cmcr`` stand-in (random bytes), pages dropped:
  the cost does not grow with the recording;
* ``check, unchanged``: :func:`~hdmea.pipeline.batch.recordings.check_finished` of the finished output
  (marker, configuration, identity, one ``stat`` of the output);
* ``check, output changed``: the same after the output's modification time moved (a user's own save):
  the output is checked whole (every digest and Fletcher32 chunk) before it is kept.

The batch's fixed cost before and after the check is :mod:`benchmarks.studies.batch_fixed_ab`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.harness.scratch import drop_page_cache


def _timed(fn, rounds: int, before=None) -> tuple[float, float]:
    seconds = []
    for _ in range(rounds):
        if before is not None:
            before()
        t0 = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - t0)
    return min(seconds), statistics.median(seconds)


def main() -> None:
    from hdmea.config import parse_config
    from hdmea.pipeline.batch import Recording, run_job
    from hdmea.pipeline.batch.recordings import check_finished, recording_identity
    from hdmea.synthetic import generate_recording

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="h5stream-marker-") as tmp:
        tmp = Path(tmp)
        rec = generate_recording(tmp / "in", "t", n_units=3, seed=5)
        recording = Recording.from_paths(rec.cmcr_path, rec.cmtr_path)
        config = parse_config({"stimulus": {"file": "{dir}/{name}.stimulus.json"},
                               "steps": {"extract_features": False}}, base_dir=tmp)
        output = tmp / "out" / "t.h5"
        outcome = run_job(recording, output, config)
        assert outcome["status"] == "done", outcome
        big = tmp / "big.cmcr"
        with open(big, "wb") as fh:
            for _ in range(64):
                fh.write(os.urandom(16 << 20))
        big_recording = Recording(name="big", cmcr=big, cmtr=rec.cmtr_path)

        def drop(*paths):
            return lambda: [drop_page_cache(p) for p in paths]

        sizes = f"{rec.cmcr_path.stat().st_size / 1e6:.1f} MB + {rec.cmtr_path.stat().st_size / 1e6:.1f} MB"
        rows = [
            (f"identity ({sizes}), cached", _timed(lambda: recording_identity(recording), args.rounds)),
            (f"identity ({sizes}), pages dropped",
             _timed(lambda: recording_identity(recording), args.rounds, drop(rec.cmcr_path, rec.cmtr_path))),
            ("identity (1 GiB .cmcr), pages dropped",
             _timed(lambda: recording_identity(big_recording), args.rounds, drop(big, rec.cmtr_path))),
            ("check, unchanged output",
             _timed(lambda: check_finished(output, config, recording), args.rounds)),
        ]
        assert check_finished(output, config, recording).marker is not None
        st = output.stat()
        os.utime(output, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        assert check_finished(output, config, recording).marker is not None  # changed, still sound: kept
        rows.append((f"check, output changed ({st.st_size / 1e6:.1f} MB, checked whole)",
                     _timed(lambda: check_finished(output, config, recording), args.rounds)))
        for label, (low, mid) in rows:
            print(f"{label}: min {low * 1e3:.2f} ms, median {mid * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
