"""The layout of a recording file as the lab's analysis code sees it: every path, its kind, dtype kind and rank.

The manifests under ``tests/data/lab_layout/`` were measured from files that the original pipeline
(jiang-lab-retina/hdmea_processing) wrote on synthetic lab-style recordings; ``tests/manual/
make_lab_layout_manifests.py`` makes them.  This module is what both sides share: ``file_layout`` reads
a file into the same form, and ``compare_layouts`` says where ours differs.

A path names a group (``units/<unit>``), a dataset (``units/<unit>/spike_times``) or an attribute
(``units/<unit>@unit_num``).  Names that vary between recordings are folded: a unit's group is
``<unit>``, a movie's name (alone or inside a name such as ``sta_<movie>``) is ``<movie>``, and a purely
numeric name (a trial) is ``<i>``.  Each folded path keeps the distinct (kind, dtype kind, rank) it
was seen with; kind is ``group``, ``dataset`` or ``attribute``; dtype kind is numpy's kind letter, with
``str`` for variable-length strings and ``S`` for fixed-length ones; rank is the number of
dimensions (0 for a scalar, -1 for an empty dataspace).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import h5py

__all__ = ["MANIFEST_DIR", "file_layout", "fold", "compare_layouts", "load_manifest", "LayoutComparison",
           "lab_recording", "perform_lab_reads", "array_facts"]

MANIFEST_DIR = Path(__file__).resolve().parent / "data" / "lab_layout"
_NUMERIC = re.compile(r"^\d+$")


def _dtype_kind(dtype) -> str:
    info = h5py.check_string_dtype(dtype)
    if info is not None:
        return "str" if info.length is None else "S"
    if dtype.names:
        return "V"
    if h5py.check_vlen_dtype(dtype) is not None:
        return "vlen"
    return dtype.kind


def _rank(shape) -> int:
    return -1 if shape is None else len(shape)


def fold(path: str, movies: Iterable[str]) -> str:
    """``path`` with unit, movie and trial names replaced by ``<unit>``, ``<movie>`` and ``<i>``."""
    movies = sorted(set(movies), key=len, reverse=True)
    parts = path.split("/")
    out = []
    for i, part in enumerate(parts):
        if i == 1 and parts[0] == "units":
            out.append("<unit>")
            continue
        if _NUMERIC.match(part):
            out.append("<i>")
            continue
        for movie in movies:
            if movie and movie in part:
                part = part.replace(movie, "<movie>")
        out.append(part)
    return "/".join(out)


def file_layout(path: str | Path, movies: Iterable[str]) -> dict[str, list[list]]:
    """Every group, dataset and attribute of ``path``, folded: ``{path: [[kind, dtype_kind, rank], ...]}``."""
    movies = list(movies)
    seen: dict[str, set[tuple]] = {}

    def note(name: str, entry: tuple) -> None:
        seen.setdefault(fold(name, movies) if name else "", set()).add(entry)

    def attributes(name: str, obj) -> None:
        for key in obj.attrs:
            aid = obj.attrs.get_id(key)
            note_name = f"{fold(name, movies) if name else ''}@{key}"
            seen.setdefault(note_name, set()).add(("attribute", _dtype_kind(aid.dtype), _rank(aid.shape)))

    with h5py.File(path, "r") as f:
        attributes("", f)

        def visit(name, obj):
            if isinstance(obj, h5py.Group):
                note(name, ("group", "", 0))
            else:
                note(name, ("dataset", _dtype_kind(obj.dtype), _rank(obj.shape)))
            attributes(name, obj)

        f.visititems(visit)
    return {k: sorted([list(e) for e in v]) for k, v in sorted(seen.items())}


def load_manifest(name: str) -> dict:
    return json.loads((MANIFEST_DIR / name).read_text())


class LayoutComparison:
    """How a file's layout stands against a manifest's, path by path (kind and rank; dtype kind apart)."""

    def __init__(self, original: dict[str, list], ours: dict[str, list], ignore: Iterable[str] = ()):
        ignore = tuple(ignore)
        self.ignored = sorted(p for p in original if p.startswith(ignore))
        original = {p: v for p, v in original.items() if not p.startswith(ignore)}
        self.total = len(original)
        self.missing, self.other_kind, self.other_rank, self.other_dtype, self.matching = [], [], [], [], []
        for path, entries in original.items():
            if path not in ours:
                self.missing.append(path)
                continue
            want = {(e[0], e[2]) for e in entries}
            have = {(e[0], e[2]) for e in ours[path]}
            if {k for k, _ in want} != {k for k, _ in have}:
                self.other_kind.append((path, sorted(want), sorted(have)))
            elif want != have:
                self.other_rank.append((path, sorted(want), sorted(have)))
            else:
                self.matching.append(path)
                if {e[1] for e in entries} != {e[1] for e in ours[path]}:
                    self.other_dtype.append((path, entries, ours[path]))
        self.added = sorted(set(ours) - set(original) - set(self.ignored))

    def summary(self) -> str:
        return (f"{len(self.matching)}/{self.total} of the original's paths match (path, kind, rank); "
                f"{len(self.missing)} missing, {len(self.other_kind)} of another kind, "
                f"{len(self.other_rank)} of another rank; {len(self.other_dtype)} of another dtype kind; "
                f"{len(self.added)} added by us")

    def details(self, limit: int = 400) -> str:
        lines = [self.summary()]
        lines += [f"missing {p}" for p in self.missing]
        lines += [f"kind {p}: original {w}, ours {h}" for p, w, h in self.other_kind]
        lines += [f"rank {p}: original {w}, ours {h}" for p, w, h in self.other_rank]
        lines += [f"dtype {p}: original {w}, ours {h}" for p, w, h in self.other_dtype]
        return "\n".join(lines[:limit])


def compare_layouts(original: dict, ours: dict, ignore: Iterable[str] = ()) -> LayoutComparison:
    return LayoutComparison(original, ours, ignore)


def folded_read_pattern(path: str, movies: Iterable[str]) -> re.Pattern:
    """A read's path (``units/{uid}/features/{name}/data``, ``pipeline@stage1_completed``) as a pattern over
    folded manifest paths: each ``{field}`` one path segment (or part of one), ``{=a|b}`` one of the texts."""
    where, _, attr = path.partition("@")
    folded = fold(where, movies) + (f"@{attr}" if "@" in path else "")
    pattern = re.sub(r"\\\{=([^}]*)\\\}", lambda m: "(?:" + m.group(1).replace("\\|", "|") + ")",
                     re.escape(folded))  # a field looping over literal texts: one of them
    pattern = re.sub(r"\\\{[^}]*\\\}", "[^/@]+", pattern)
    return re.compile(pattern)


def concrete_paths(path: str | Path, movies: Iterable[str]) -> dict[str, list[str]]:
    """Every group, dataset and attribute of the file by its folded path: ``{folded: [concrete, ...]}``."""
    movies = list(movies)
    found: dict[str, list[str]] = {}
    with h5py.File(path, "r") as f:
        def note(name, obj):
            found.setdefault(fold(name, movies), []).append(name)
            for key in obj.attrs:
                found.setdefault(f"{fold(name, movies)}@{key}", []).append(f"{name}@{key}")
        for key in f.attrs:
            found.setdefault(f"@{key}", []).append(f"@{key}")
        f.visititems(note)
    return found


def entry_of(obj_or_attr) -> tuple[str, str, int]:
    """``(kind, dtype kind, rank)`` of an h5py object, or of an attribute given as ``(obj, name)``."""
    if isinstance(obj_or_attr, tuple):
        obj, name = obj_or_attr
        aid = obj.attrs.get_id(name)
        return ("attribute", _dtype_kind(aid.dtype), _rank(aid.shape))
    if isinstance(obj_or_attr, h5py.Group):
        return ("group", "", 0)
    return ("dataset", _dtype_kind(obj_or_attr.dtype), _rank(obj_or_attr.shape))


def _like_original(rank: int, access: str, conversion: str):
    """What the read does on an object of the original's rank (the original's outcome): None or the error."""
    import numpy as np

    try:
        value = np.zeros((1,) * max(rank, 0), dtype=np.float64)
        if access == "[:]":
            if rank == 0:
                raise ValueError("Illegal slicing argument for scalar dataspace")
            value = value[:]
        elif access == "[0]":
            value = value[0]
        if conversion:
            {"float": float, "int": int, "bool": bool, "str": str}[conversion](value)
    except (TypeError, ValueError, IndexError) as exc:
        return type(exc).__name__
    return None


def perform_lab_reads(path: str | Path, manifest_paths: dict, reads: list[dict], movies: Iterable[str]) -> dict:
    """Perform each read of the lab on the file at ``path``, on every path of the original's manifest it names.

    Returns ``{"done": [...], "failed": [...], "absent": [...], "elsewhere": n, "read": {folded}}``: a read
    done as on the original's file (the same kind, dtype kind and rank as the manifest, the same outcome), one
    that failed (with why), one whose manifest path the file lacks, the count of reads naming no path of the
    manifest, and the folded paths read.
    """
    import numpy as np

    movies = list(movies)
    ours = concrete_paths(path, movies)
    out = {"done": [], "failed": [], "absent": [], "elsewhere": 0, "read": set()}
    with h5py.File(path, "r") as f:
        for read in reads:
            if read["path"] is None:
                continue
            pattern = folded_read_pattern(read["path"], movies)
            keys = [k for k in manifest_paths if pattern.fullmatch(k)]
            if not keys:
                out["elsewhere"] += 1
                continue
            for key in keys:
                idiom = {"in": f"'{read['path']}' in", "attrs": f".attrs[{read['path']}]"}.get(
                    read["idiom"], f"f[{read['path']}]{read.get('access', '')}")
                idiom = f"{read['conversion']}({idiom})" if read.get("conversion") else idiom
                where = f"{read['file']}:{read['line']} {idiom} -> {key}"
                wanted = {tuple(e) for e in manifest_paths[key]}
                if key not in ours:
                    out["absent"].append(where)
                    continue
                concrete = ours[key][0]
                try:
                    if read["idiom"] == "in":
                        obj_path = concrete.partition("@")[0]
                        parent, _, name = obj_path.rpartition("/")
                        assert name in (f[parent] if parent else f), "the 'in' test is false"
                        entry = entry_of(f[obj_path])
                    elif read["idiom"] == "attrs" or "@" in concrete:
                        obj_path, _, name = concrete.partition("@")
                        obj = f[obj_path] if obj_path else f
                        value = obj.attrs[name] if read.get("access") != "get" else obj.attrs.get(name)
                        assert value is not None
                        entry = entry_of((obj, name))
                    else:
                        obj = f[concrete]
                        entry = entry_of(obj)
                        access, conversion = read.get("access", ""), read.get("conversion", "")
                        if isinstance(obj, h5py.Dataset) and (access or conversion):
                            expected = _like_original(entry[2], access, conversion)
                            try:
                                value = obj[()] if access == "[()]" else obj[:] if access == "[:]" else \
                                    obj[0] if access == "[0]" else obj[()]
                                if conversion:
                                    {"float": float, "int": int, "bool": bool, "str": str}[conversion](
                                        np.asarray(value) if not isinstance(value, bytes) else value)
                                got = None
                            except (TypeError, ValueError, IndexError) as exc:
                                got = type(exc).__name__
                            assert got == expected, f"{access}{conversion}: {got} where the original's gives {expected}"
                    assert entry in wanted or entry[0] == "group" and ("group", "", 0) in wanted, \
                        f"{entry} where the original has {sorted(wanted)}"
                    out["done"].append(where)
                    out["read"].add(key)
                except (AssertionError, KeyError, OSError) as exc:
                    out["failed"].append(f"{where}: {exc}")
    return out


LAB_DATASET = "2024.08.08-10.40.20-Rec"
LAB_PLAYLIST = "play_optimization_set6_ipRGC_manual"


def real_length():
    """Movie lengths at least those of the lab's JSON trials (start_frame + repeat x trial_length_frame of
    ``config/stimuli/<movie>.json`` at fe13de2): step 240 + 3 x 600, noise 10,800 (2,700 images x 4), bar
    60 + 3 x 4,520, colour 120 + 3 x 720, frequency 30 + 3 x 1,500, baseline 180."""
    from hdmea.stimulus import TrialConfig

    return {"step_trial": TrialConfig(start_frame=240, trial_length_frame=600, repeat=3), "noise_images": 2700,
            "bar_sweep_frames": 570, "color_step_frames": 200, "color_gap_frames": 200, "freq_break_frames": 70}


def lab_recording(out: Path, raw_seconds: float = 0.5, **overrides):
    """The manifests' kind of recording: lab-style synthetic (seed 5), the lab's playlist and movie-length CSV
    files and the noise movie as ``Stimulations/<movie>.npy``; ``(rec, playlist_csv, lengths_csv, stimuli)``
    (``overrides``: further :class:`SyntheticConfig` fields)."""
    import numpy as np

    from hdmea.synthetic import SyntheticConfig, generate_recording

    rec = generate_recording(out / "rec", LAB_DATASET, config=SyntheticConfig.with_lab_stimuli(
        pre_margin_frames=180, post_margin_frames=181, raw_seconds=raw_seconds, noise_bank_frames=2048,
        **overrides), seed=5)
    movies = ", ".join(f"'{m}.mov'" for m in rec.stimulus.playlist)
    (out / "playlist.csv").write_text(f'playlist_name,movie_names\n{LAB_PLAYLIST},"[{movies}]"\n')
    (out / "movie_length.csv").write_text("movie_name,movie_length\n" + "".join(
        f"{k},{v}\n" for k, v in rec.stimulus.movie_lengths.items()))
    stimuli = out / "Stimulations"
    stimuli.mkdir(exist_ok=True)
    np.save(stimuli / f"{rec.config.noise_movie}.npy",
            np.repeat(np.load(rec.noise_movie_path), rec.config.noise_frames_per_image, axis=0))
    return rec, out / "playlist.csv", out / "movie_length.csv", stimuli


def _plain_value(value):
    import numpy as np

    if isinstance(value, np.ndarray):
        if value.size != 1:
            return None
        value = value.reshape(-1)[0]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if value != value else float(value)
    return value if isinstance(value, str) else None


def scalar_values(path: str | Path) -> dict[str, Any]:
    """Every one-value dataset (0-d or 1 element) and attribute of the file, by its path (names not folded):
    ``{"units/unit_004/features/eimage_sta/metadata/n_spikes_used": 12, "pipeline@stage1_completed": True}``."""
    out: dict[str, Any] = {}

    def keep(name, value):
        value = _plain_value(value)
        if value is not None:
            out[name] = value

    with h5py.File(path, "r") as f:
        for key in f.attrs:
            keep(f"@{key}", f.attrs[key])

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.size == 1 and not obj.dtype.names:
                keep(name, obj[()])
            for key in obj.attrs:
                keep(f"{name}@{key}", obj.attrs[key])

        f.visititems(visit)
    return out


def value_differences(original: dict, ours: dict, movies: Iterable[str], rtol: float = 1e-9) -> dict[str, list]:
    """The values of ``original`` that ``ours`` holds otherwise, by folded path: ``{folded: [(path, o, h)]}``."""
    import math

    movies = list(movies)
    out: dict[str, list] = {}
    for path, value in original.items():
        if path not in ours:
            continue
        mine = ours[path]
        same = mine == value or (isinstance(value, float) and isinstance(mine, (int, float)) and
                                 math.isclose(value, mine, rel_tol=rtol, abs_tol=0.0))
        if not same:
            where, _, attr = path.partition("@")
            out.setdefault(fold(where, movies) + (f"@{attr}" if "@" in path else ""), []).append((path, value, mine))
    return out


#: The arrays whose shape, dtype and NaN content a manifest keeps (folded paths): the series and images
#: the lab's plots draw, where a unit without spikes must not look like one with a flat response.
ARRAY_FACT_PATHS = ("units/<unit>/firing_rate_10hz", "units/<unit>/features/eimage_sta/data",
                    "units/<unit>/features/sta_<movie>/data", "units/<unit>/features/<movie>/sta")


def array_facts(path: str | Path) -> dict[str, dict]:
    """Shape, dtype and NaN content (``all``, ``some``, ``none``) of each floating-point dataset of the file
    whose path has the form of one of :data:`ARRAY_FACT_PATHS`, by its path (names not folded)."""
    import numpy as np

    patterns = [re.compile("^" + re.escape(p).replace("<unit>", "[^/]+").replace("<movie>", "[^/]+") + "$")
                for p in ARRAY_FACT_PATHS]
    out: dict[str, dict] = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and any(p.match(name) for p in patterns) and obj.dtype.kind == "f":
                data = obj[()]
                nan = np.isnan(data)
                out[name] = {"shape": list(obj.shape), "dtype": obj.dtype.str.lstrip("<>=|"),
                             "nan": "all" if nan.size and nan.all() else "some" if nan.any() else "none"}
        f.visititems(visit)
    return dict(sorted(out.items()))
