"""How many fuzzed copies of a vendor file read without an error, with a fixed seed.

The originals are the fuzz tests' synthetic ``.cmcr``/``.cmtr`` (``tests/fuzz/_formats.py``:
3 units, a 6 x 6 region, 2 kHz, written by ``hdmea.synthetic``); ``--mutations`` copies of
each per seed (default 400, ``--seed``, default 61, repeated for several: 20% zeroed blocks, 10% flips in the stored
types of tables, the rest byte flips half in data, half in other metadata) are read by
the public reader in separate processes (``tests/fuzz/_driver.py``).  Outcomes:
``identical`` (the damage did not reach what is read), ``typed`` (a typed error),
``warned`` (a value changed, read with an ``UnusualVendorValueWarning`` whose text the
result keeps, as the recording stores it), ``silent`` (read without an error or such a
warning, a value changed), ``raw``, ``crash``, ``hang``.

Vendor files carry no checksum: a flip in a raw sample cannot be told from a sample,
so ``silent`` never reaches 0; what the format or physics rules out can be refused.

``--save FILE`` keeps every outcome; ``--compare FILE`` (a saved run of the same seed and
count) lists, per check, the copies that read silently there and are refused (or warned
of) here, named by the first words of the error (or warning).

Run: ``python -m benchmarks.studies.fuzz_vendor --save /tmp/after.json --compare /tmp/before.json``.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FORMATS = ("vendor-cmtr", "vendor-cmcr")


def run(n: int, seeds: list[int], workers: int) -> dict[str, list[dict]]:
    sys.path.insert(0, str(REPO))
    from hdmea.synthetic import generate_recording
    from tests.fuzz._driver import run_mutations
    from tests.fuzz._formats import FORMATS as ALL
    from tests.fuzz._formats import small_recording_config
    from tests.fuzz._mutations import plan_mutations

    out = {}
    with tempfile.TemporaryDirectory(prefix="h5stream-fuzz-", dir="/tmp") as tmp:
        originals = Path(tmp) / "originals"  # the vendor originals of tests/fuzz/_formats.py, byte for byte
        generate_recording(originals, "rec", config=small_recording_config(), seed=11)
        for name in FORMATS:
            fmt = ALL[name]
            mutations = []
            for seed in seeds:  # n copies per seed, indexed on from the last seed's
                mutations += plan_mutations(originals / fmt.root, n, seed=seed, first_index=len(mutations))
            report = run_mutations(name, originals, Path(tmp) / name, mutations, workers=workers)
            out[name] = [{"index": m.index, "kind": m.kind, "describe": m.describe(), **report.outcomes[m.index]}
                         for m in mutations]
    return out


def check_name(message: str) -> str:
    """The check an error comes from: its message's words after the file and object, before the details."""
    text = re.sub(r"^.*?\]: ", "", message)
    text = re.sub(r"^/\S+: ", "", text)
    return re.split(r" \(expected|\. |; ", text, maxsplit=1)[0][:90]


def table(outcomes: dict[str, list[dict]]) -> str:
    lines = []
    for name, records in outcomes.items():
        counts = collections.Counter(r["outcome"] for r in records)
        by_kind = collections.defaultdict(collections.Counter)
        for r in records:
            by_kind[r["kind"]][r["outcome"]] += 1
        lines.append(f"{name}: {len(records)} copies: " + ", ".join(f"{k} {counts[k]}" for k in
                     ("identical", "typed", "warned", "silent", "raw", "crash", "hang")))
        for kind, c in sorted(by_kind.items()):
            lines.append(f"  {kind:<9} " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    return "\n".join(lines)


def compare(before: dict[str, list[dict]], after: dict[str, list[dict]]) -> str:
    lines = []
    for name in after:
        was = {r["index"]: r for r in before.get(name, [])}
        caught = collections.Counter()
        newly_silent = []
        for r in after[name]:
            old = was.get(r["index"])
            if old is None:
                continue
            if old["outcome"] == "silent" and r["outcome"] == "typed":
                caught[check_name(r.get("message", ""))] += 1
            elif old["outcome"] == "silent" and r["outcome"] == "warned":
                caught["warned: " + re.sub(r"\d[\d.]*", "N", check_name(r.get("warning", "")))[:40]] += 1
            elif old["outcome"] != "silent" and r["outcome"] == "silent":
                newly_silent.append(r["describe"])
        silent_before = sum(r["outcome"] == "silent" for r in before.get(name, []))
        silent_after = sum(r["outcome"] == "silent" for r in after[name])
        lines.append(f"{name}: silent {silent_before} -> {silent_after}; refused or warned of now, read silently before:")
        lines += [f"  {n:>4}  {check}" for check, n in caught.most_common()]
        if newly_silent:
            lines.append(f"  silent now, not before: {newly_silent[:5]}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutations", type=int, default=400, help="copies per seed and file")
    parser.add_argument("--seed", type=int, action="append", help="a seed of the plan (repeat for several; default 61)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--save", type=Path)
    parser.add_argument("--compare", type=Path)
    args = parser.parse_args(argv)
    seeds = args.seed or [61]
    outcomes = run(args.mutations, seeds, args.workers)
    print(f"seeds {' '.join(map(str, seeds))}, {args.mutations} copies per seed and format")
    print(table(outcomes))
    if args.save:
        args.save.write_text(json.dumps(outcomes))
    if args.compare:
        print(compare(json.loads(args.compare.read_text()), outcomes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
