"""Where the time of a lab-shaped run goes: the parts of the code counted from inside, and the split reported.

:class:`Counters` wraps the parts named in :data:`PARTS` (module functions and class methods of the readers,
the load step and the raw reads) for the duration of a block: calls, wall seconds inside them and the calling
thread's CPU seconds.  :func:`split_text` words the fastest round's split for a row's details, with the
electrical-image kernel's own profile (``h5stream.kernels.eimage.PROFILE``).  Used by
:mod:`benchmarks.suite.bench_lab_shape`.
"""

from __future__ import annotations

import contextlib
import threading
import time


#: the parts counted: (label, module, attribute path); a label may name several attributes (the
#: code's versions, or the sliced and the direct reads of the raw rows); one the code does not have
#: is left out, and a label none of whose attributes exist is reported as missing.  The compiled
#: electrical-image kernel is not wrapped: it reports its own split (h5stream.kernels.eimage.PROFILE)
PARTS = (
    ("load: .cmtr units", "hdmea.io.cmtr", "CmtrFile.read_units"),
    ("load: opening files", "hdmea.io.cmtr", "open_mcs_file"),
    ("load: opening files", "hdmea.io.cmcr", "open_mcs_file"),
    ("load: Peaks reads", "hdmea.io.cmtr", "CmtrFile._read_peaks"),
    ("load: Peaks reads", "hdmea.io.cmtr", "_read_table"),
    ("load: Peaks reads", "hdmea.io.cmtr", "CmtrFile._read_table"),
    ("load: unit summaries", "hdmea.io.cmtr", "_summarise"),
    ("load: frame times", "hdmea.steps.load", "get_frame_timestamps"),
    ("load: light reference", "hdmea.io.cmcr", "CmcrFile.light_reference"),
    ("load: frame order", "hdmea.steps.load", "decide_frame_order"),
    ("load: staging", "hdmea.steps.load", "open_target"),
    ("eimage: frame order", "hdmea.steps.eimage", "settle_frame_order"),
    ("eimage: reads", "h5stream.kernels.raw_chunks", "_read_rows"),
    ("eimage: reads", "h5stream.kernels.direct_rows", "DirectRows.read"),
    ("eimage: reads", "h5stream.kernels.direct_rows", "DirectRows.read_runs"),
)


class Counters:
    """Calls, wall seconds inside them and the calling thread's CPU seconds, per part.

    :meth:`installed` wraps the parts (module functions and class methods) for the
    duration of a block and puts the originals back after it.
    """

    def __init__(self) -> None:
        self.parts: dict[str, dict[str, float]] = {}
        self.missing: list[str] = []
        self._lock = threading.Lock()

    def add(self, label: str, wall: float, cpu: float) -> None:
        with self._lock:
            part = self.parts.setdefault(label, {"calls": 0, "seconds": 0.0, "cpu": 0.0})
            part["calls"] += 1
            part["seconds"] += wall
            part["cpu"] += cpu

    def timed(self, label: str, fn):
        def wrapper(*args, **kwargs):
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(label, time.perf_counter() - t0, time.thread_time() - c0)

        wrapper.__wrapped__ = fn
        return wrapper

    @contextlib.contextmanager
    def installed(self):
        import importlib

        undo = []
        found = set()
        try:
            for label, module, attr in PARTS:
                try:
                    owner = importlib.import_module(module)
                except ImportError:
                    continue
                *path, name = attr.split(".")
                for step in path:
                    owner = getattr(owner, step, None)
                if owner is None or not hasattr(owner, name):
                    continue
                found.add(label)
                original = getattr(owner, name)
                raw = owner.__dict__.get(name, original) if isinstance(owner, type) else original
                setattr(owner, name, self.timed(label, original))
                undo.append((owner, name, raw))
            self.missing = sorted({label for label, _, _ in PARTS} - found)
            yield self
        finally:
            for owner, name, raw in reversed(undo):
                setattr(owner, name, raw)


def split_text(reports: list[dict]) -> str:
    """Where the time went in the fastest round of ours."""
    best = min(reports, key=lambda r: r["steps"]["both"]["wall"])
    s, parts = best["steps"], best["parts"]
    text = [f"fastest round: load {s['load']['wall']:.2f} s wall / {s['load']['cpu']:.2f} s CPU, "
            f"{s['load']['read_bytes'] / 1e9:.2f} GB read; electrical images {s['eimage']['wall']:.2f} s / "
            f"{s['eimage']['cpu']:.2f} s CPU, {s['eimage']['read_bytes'] / 1e9:.2f} GB read"]
    inner = [f"{label} {p['seconds']:.2f} s in {p['calls']:.0f} calls ({p['cpu']:.2f} s CPU of the calling thread)"
             for label, p in parts.items()]
    text.append("time inside the parts (wall, summed over threads): " + "; ".join(inner))
    kernel = best.get("kernel")
    if kernel:
        text.append(f"electrical-image kernel (h5stream.kernels.eimage.PROFILE): waited for reads "
                    f"{kernel['read_wait_s']:.2f} s, in the kernel {kernel['kernel_s']:.2f} s wall, its threads "
                    f"filtering {kernel['filter_cpu_s']:.2f} s CPU and accumulating {kernel['accumulate_cpu_s']:.2f} s "
                    f"CPU ({kernel['rows']:.0f} rows, {kernel['windows']:.0f} windows)")
    else:
        text.append("the electrical images' kernel keeps no profile in this code")
    if best["missing"]:
        text.append("parts not found in this code: " + ", ".join(best["missing"]))
    return "; ".join(text)
