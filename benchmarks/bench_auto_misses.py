"""What a per-target filter catches and misses, per target and per kind of corruption (a diagnostic).

Per-target cleaning keeps, for each target, the songs whose score for it passes the filter (``auto``
or a fraction, ``sepclean.filtering``). Against a synthetic dataset's ground truth this prints, for
each target, the per-target AUROC, how many (song, target) pairs were contaminated, how many the
filter drops (caught) and how many clean pairs it drops with them; then, per target and per kind of
what was done to the stem (``sepclean.detection.stem_kind``: bleeding, a swapped label, a label that
lost or got a part, ...), the share caught. Several tables (e.g. one scorer's tables from several
seeds on the same data) are replicates: counts are their means.

    python benchmarks/bench_auto_misses.py --contamination STORE/data/<key> STORE/scores/<key>/table ...

A grid's artifact store holds each XP's tables (``outputs/artifacts/scores/*/table``; the scorer is
in the folder's ``spec.json``) and its dataset (``outputs/artifacts/data/*``).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from sepclean.detection import auroc, labels, load_contamination, stem_kind
from sepclean.errors import SepcleanError
from sepclean.filtering import AUTO, auto_keep, top_fraction
from sepclean.scores import ScoreTable


def kept(column: dict[str, float], ratio) -> set[str]:
    return set(auto_keep(column) if ratio == AUTO else top_fraction(column, float(ratio)))


def tally(tables: list[ScoreTable], truth: dict, ratio) -> tuple[dict, dict]:
    """per target: [AUROC, contaminated, caught, clean dropped] per table; per (target, kind): [n, caught]."""
    per_target: dict[str, list] = {}
    per_kind: dict[tuple[str, str], list[int]] = {}
    for table in tables:
        missing = set(truth["tracks"]) ^ set(table.tracks)
        if missing:
            raise SepcleanError(f"a table ({table.method}) and the ground truth differ in {len(missing)} tracks, "
                                f"e.g. {sorted(missing)[0]}: not the same dataset")
        for target in table.targets:
            column, bad = table.column(target), labels(truth, target=target)
            keep = kept(column, ratio)
            caught = [t for t in column if bad[t] and t not in keep]
            dropped_clean = [t for t in column if not bad[t] and t not in keep]
            per_target.setdefault(target, []).append(
                [auroc(column, bad), sum(bad.values()), len(caught), len(dropped_clean)])
            for track in column:
                kind = stem_kind(truth["tracks"][track], target)
                if kind is not None:
                    cell = per_kind.setdefault((target, kind), [0, 0])
                    cell[0] += 1
                    cell[1] += track in caught
    return per_target, per_kind


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tables", nargs="+", help="score table folders (replicates on the same dataset)")
    parser.add_argument("--contamination", required=True, help="the dataset's contamination.json, or its folder")
    parser.add_argument("--ratio", default=AUTO, help="the filter: auto (default) or a kept fraction")
    args = parser.parse_args(argv)
    try:
        truth = load_contamination(args.contamination)
        tables = [ScoreTable.read(path) for path in args.tables]
        per_target, per_kind = tally(tables, truth, args.ratio)
    except SepcleanError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    n = len(tables)
    print(f"{tables[0].method}, ratio {args.ratio}, {n} table(s); counts are means over tables\n")
    print("| target | AUROC | contaminated | caught | clean dropped |\n|---|---:|---:|---:|---:|")
    for target, rows in per_target.items():
        a = np.mean(rows, axis=0)
        print(f"| {target} | {a[0]:.3f} | {a[1]:.1f} | {a[2]:.1f} ({a[2] / a[1]:.0%}) | {a[3]:.1f} |")
    print("\n| target | what was done to the stem | pairs | caught |\n|---|---|---:|---:|")
    for (target, kind), (count, caught) in sorted(per_kind.items()):
        print(f"| {target} | {kind} | {count / n:.1f} | {caught / count:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
