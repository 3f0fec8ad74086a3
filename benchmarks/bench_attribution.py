"""Attribution benchmark: cost against training, and how well each score finds the contamination.

On a synthetic mixed23 dataset (profile ``small`` by default) it trains an Open-Unmix baseline with
the tiny preset on the noisy pool, then runs ``sepclean attribute`` in several settings and prints:

- attribution time as a multiple of one training epoch over the same tracks (summed over targets),
  and per reference (the issue's targets: exact <= 0.5 x M epoch-equivalents, linear <= 3);
- peak resident memory of each attribution process;
- detection AUROC against contamination.json (overall, per kind, per target) for the paper's
  setting (absolute ΔL), ΔL relative to the track's loss, linear mode, and the ``loss`` comparator.

The dataset and the baseline are the pipeline's stages, in an artifact store under ``--out`` (made
once, reused by every rerun); the attribution runs are timed in a process of their own.

    python benchmarks/bench_attribution.py                      # ~10 min on 2 cores
    python benchmarks/bench_attribution.py --strength 0.02 0.2 --segment 4
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import resource
import statistics
import sys
import time
from pathlib import Path

from sepclean import STEMS
from sepclean.detection import report
from sepclean.pipeline import stages
from sepclean.pipeline.artifacts import ArtifactStore
from sepclean.scores import ScoreTable
from sepclean.toolkit import TrainSpec


def _attribute(queue, kwargs):
    from sepclean.attribution.run import Run, Settings
    from sepclean.manifest import Manifest

    start = time.perf_counter()
    run = Run("openunmix", kwargs["checkpoint"], Manifest.load(kwargs["train"]), Manifest.load(kwargs["reference"]),
              kwargs["out"], kwargs["targets"], Settings(**kwargs["settings"]), progress=False)
    run.compute()
    queue.put((time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def attribute(**kwargs) -> tuple[float, float]:
    """Runs one attribution in a fresh process: (seconds, peak RSS in MiB)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_attribute, args=(queue, kwargs))
    process.start()
    result = queue.get()
    process.join()
    return result


def describe(name: str, table: ScoreTable, truth: dict) -> str:
    found = report(table, truth)
    kinds = " ".join(f"{k}={v:.2f}" for k, v in found["kind"].items())
    targets = " ".join(f"{t}={v:.2f}" for t, v in found["target"].items())
    return f"  {name:<26} AUROC {found['overall']:.2f}   kinds: {kinds}   targets: {targets}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench_attribution")
    parser.add_argument("--profile", default="small")
    parser.add_argument("--seed", type=int, default=0, help="the dataset's and the baseline's seed")
    parser.add_argument("--epochs", type=int, default=40, help="baseline training epochs (tiny preset)")
    parser.add_argument("--targets", nargs="+", default=list(STEMS))
    parser.add_argument("--strength", type=float, nargs="+", default=[0.2], help="unlearning strengths to try")
    parser.add_argument("--segment", type=float, default=None, help="attribution excerpt (default: whole tracks)")
    parser.add_argument("--no-linear", action="store_true", help="skip linear mode")
    args = parser.parse_args()

    logging.basicConfig(format="%(message)s", stream=sys.stdout)
    logging.getLogger("sepclean.pipeline").setLevel(logging.INFO)  # the stages say what they make
    out = Path(args.out).resolve()
    store = ArtifactStore(out / "artifacts")
    data = stages.synthetic_data(store, "mixed23", profile=args.profile, seed=args.seed, progress=False)
    truth = data.contamination
    print(f"training the baseline (tiny preset, {args.epochs} epochs, targets {' '.join(args.targets)})")
    spec = TrainSpec(data.path("train"), data.path("valid"), targets=tuple(args.targets), preset="tiny",
                     epochs=args.epochs, seed=args.seed, quiet=True)
    baseline = stages.train(store, "openunmix", spec).checkpoint
    epoch = sum(statistics.median(json.loads((baseline / f"{target}.json").read_text())["train_time_history"])
                for target in args.targets)
    references = len(data.manifest("reference"))
    print(f"one training epoch over the pool, all targets: {epoch:.2f} s;  M = {references} references")

    runs = [("exact", s) for s in args.strength] + ([] if args.no_linear else [("linear", args.strength[0])])
    lines = []
    for mode, strength in runs:
        name = f"{mode}_s{strength:g}" + (f"_seg{args.segment:g}" if args.segment else "")
        folder = out / "attribution" / baseline.parent.name / name  # runs of one baseline
        seconds, peak = attribute(checkpoint=str(baseline), train=str(data.path("train")),
                                  reference=str(data.path("reference")), out=str(folder), targets=args.targets,
                                  settings=dict(mode=mode, strength=strength, segment=args.segment))
        ratio = seconds / epoch
        print(f"{name}: {seconds:.1f} s = {ratio:.1f} epoch-equivalents = {ratio / references:.2f} x M; "
              f"peak RSS {peak:.0f} MiB")
        lines.append(describe(f"{name} ΔL", ScoreTable.read(folder), truth))
        lines.append(describe(f"{name} ΔL/L", ScoreTable.read(folder / "relative"), truth))
        if mode == "exact" and strength == args.strength[0]:
            lines.append(describe("loss (model's own)", ScoreTable.read(folder / "loss"), truth))
    print("detection (AUROC: P(clean track outscores a contaminated one)):")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
