"""Detection benchmark: how well each scoring method finds the contaminated songs (a diagnostic).

For every dataset (a synthetic preset at a severity) and every dataset seed it generates the data,
trains a tiny Open-Unmix baseline on the noisy pool (every target), runs every scorer through the
registry (``sepclean.scorers.create``) and prints the detection AUROC (sepclean.detection: the
probability that a clean song outscores a contaminated one, on the unified per-song score), the
mean over seeds with a 95% bootstrap interval. The held-out family (``heldout``, corruption kinds
no scorer was developed against, sepclean/synth/heldout.py) is reported in its own table: never
tune on it.

The interval is a hierarchical bootstrap: each replicate draws the seeds with replacement, then
within each seed the clean and the contaminated songs with replacement (stratified), and averages
the seeds' AUROCs; it holds the song-sampling and the seed-to-seed (data and baseline) variation.

Everything is made by the pipeline's stages (sepclean.pipeline.stages, through the dora main's
``Experiment``) in an artifact store under ``--out``, keyed by what made it: datasets, baselines,
reference models, attribution runs (shared by the scorings that only read their ΔL) and every
scores table. A rerun only computes what is missing; the benchmark itself keeps only its loops and
statistics.

    python benchmarks/bench_detection.py                                   # small profile, 3 seeds
    python benchmarks/bench_detection.py --scorers fad attribute attribute-rank-worst
    python benchmarks/bench_detection.py --scorers 'mine=attribute:scoring=cosine,unified=worst'
    python benchmarks/bench_detection.py --profile bench --seeds 0 1 2 3 4 --umx-preset small --device cuda
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
from pathlib import Path

import numpy as np
import yaml
from omegaconf import OmegaConf

from sepclean import STEMS
from sepclean.detection import labels, rank_auroc
from sepclean.errors import SepcleanError
from sepclean.filtering import auto_keep
from sepclean.pipeline.artifacts import ArtifactStore
from sepclean.pipeline.experiment import Experiment
from sepclean.scores import UNIFIED, ScoreTable
from sepclean.scorers import create

DATASETS = {
    "mixed23-paper": ("mixed23", "paper"),
    "mixed23-heavy": ("mixed23", "heavy"),
    "effects-paper": ("effects", "paper"),
    "effects-heavy": ("effects", "heavy"),
    "heldout-paper": ("heldout", "paper"),
    "heldout-heavy": ("heldout", "heavy"),
}
HELDOUT_PRESETS = ("heldout",)
DEFAULT_DATASETS = ["mixed23-paper", "mixed23-heavy", "effects-paper", "effects-heavy", "heldout-paper"]

SCORERS: dict[str, tuple[str, dict]] = {
    "random": ("random", {}),
    "fad": ("fad", {}),
    "mlp": ("mlp", {}),
    "loss": ("loss", {}),
    "attribute": ("attribute", {}),  # the paper's mean ΔL
    "attribute-relative": ("attribute", {"scoring": "relative"}),
    "attribute-gradnorm": ("attribute", {"scoring": "gradnorm"}),
    "attribute-cosine": ("attribute", {"scoring": "cosine"}),
    "attribute-rank": ("attribute", {"references": "rank", "unified": "rank"}),
    "attribute-worst": ("attribute", {"unified": "worst"}),
    "attribute-rank-worst": ("attribute", {"references": "rank", "unified": "worst"}),
    "attribute-relative-rank-worst": ("attribute", {"scoring": "relative", "references": "rank", "unified": "worst"}),
    "attribute-gradnorm-rank-worst": ("attribute", {"scoring": "gradnorm", "references": "rank", "unified": "worst"}),
    "attribute-checkpoints": ("attribute", {"mode": "linear", "checkpoints": [2, 4, 6, 8, 10]}),
    "attribute-checkpoints-rank-worst": ("attribute", {"mode": "linear", "checkpoints": [2, 4, 6, 8, 10],
                                                       "references": "rank", "unified": "worst"}),
    "refloss": ("refloss", {}),
    "refloss-reducible": ("refloss", {"scoring": "reducible"}),
    "refloss-ratio": ("refloss", {"scoring": "ratio"}),
    "refsdr": ("refsdr", {}),
}
DEFAULT_SCORERS = list(SCORERS)
REFERENCE_MODEL_METHODS = ("refloss", "refsdr")
"""Methods given the bench's reference model as ``checkpoint`` unless their settings name one."""


TRAIN_SEED = 42
"""The models' training seed: Open-Unmix's own default, which docs/results.md's figures were trained with."""


class BenchError(SepcleanError):
    pass


def parse_scorer(text: str) -> tuple[str, str, dict]:
    """``label`` from SCORERS, or ``label=method:key=value,key=value`` (values read as YAML), or
    ``label=method:{key: value, ...}`` (a YAML mapping, for nested settings such as fusion's)."""
    if "=" not in text.split(":")[0]:
        if text not in SCORERS:
            raise BenchError(f"unknown scorer {text!r}: one of {', '.join(SCORERS)}, or label=method:key=value,...")
        return (text, *SCORERS[text])
    label, _, rest = text.partition("=")
    method, _, settings = rest.partition(":")
    if settings.strip().startswith("{"):
        return label, method, yaml.safe_load(settings)
    parsed = {}
    for item in filter(None, settings.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise BenchError(f"{text!r}: setting {item!r} is not key=value")
        parsed[key.strip()] = yaml.safe_load(value)
    return label, method, parsed


class Bench:
    """One dataset (a synthetic preset at a severity, one seed) as the dora main's ``Experiment``
    makes it in the store: its data, noisy baseline (``openunmix``), reference model (``reference``)
    and scores. ``cfg``: the dora main's config; ``known``: label -> (method, settings)."""

    def __init__(self, store: ArtifactStore, cfg: dict, args, name: str, seed: int,
                 known: dict[str, tuple[str, dict]]):
        preset, severity = DATASETS[name]
        cfg = copy.deepcopy(cfg)
        cfg["seed"] = TRAIN_SEED
        cfg["data"]["synth"].update(preset=preset, severity=severity, profile=args.profile, seed=seed)
        arch = {**cfg["archs"]["openunmix"], "preset": args.umx_preset, "targets": args.targets,
                "epochs": args.epochs, "epoch_updates": None}
        cfg["archs"] = {"openunmix": {**arch, "overrides": [f"save_every={args.save_every}"]},
                        "reference": {**arch, "overrides": []}}
        cfg["scoring"]["baseline"] = "openunmix"
        self.experiment = Experiment(cfg, store, Path(args.out) / "demucs", args.device, progress=False)
        self.data = self.experiment.data()
        self.known = known
        songs = len(self.data.manifest("train")) / len(self.data.manifest("reference"))
        cfg["archs"]["reference"]["epochs"] = args.reference_epochs or args.epochs * max(1, round(songs))

    def table(self, label: str) -> ScoreTable:
        """The scores of the scorer ``label``."""
        return ScoreTable.read(self._table(label))

    def _table(self, label: str) -> Path:
        method, settings = self.known[label]
        if method == "fusion":  # components naming other scorers of the bench are their tables
            settings = {**settings, "methods": [str(self._table(c)) if isinstance(c, str) and c in self.known else c
                                                for c in settings.get("methods", ())]}
        elif method in REFERENCE_MODEL_METHODS and "checkpoint" not in settings:
            model = self.experiment.train("reference", self.data, "reference")
            settings = {**settings, "checkpoint": str(model.checkpoint)}
        return self.experiment.score(self.data, create(method, **settings), note=f" ({label})")


def bootstrap(cells: list[tuple[np.ndarray, np.ndarray]], draws: int, rng: np.random.Generator):
    """Mean AUROC over seeds and its hierarchical-bootstrap 95% interval (seeds where one class is
    empty, e.g. no song with that stem contaminated, are left out)."""
    cells = [(v, b) for v, b in cells if b.any() and not b.all()]
    if not cells:
        return float("nan"), float("nan"), float("nan")
    mean = float(np.mean([rank_auroc(v, b) for v, b in cells]))
    replicates = np.empty(draws)
    for k in range(draws):
        values = []
        for s in rng.integers(0, len(cells), len(cells)):
            v, b = cells[s]
            good, bad = np.flatnonzero(~b), np.flatnonzero(b)
            pick = np.concatenate([rng.choice(good, good.size), rng.choice(bad, bad.size)])
            values.append(rank_auroc(v[pick], b[pick]))
        replicates[k] = np.mean(values)
    low, high = np.percentile(replicates, [2.5, 97.5])
    return mean, float(low), float(high)


def cell(table: ScoreTable, truth: dict, target: str = UNIFIED) -> tuple[np.ndarray, np.ndarray]:
    truth_labels = labels(truth, target=None if target == UNIFIED else target)
    column = table.column(target)
    tracks = [t for t in column if t in truth_labels]
    return np.array([column[t] for t in tracks]), np.array([truth_labels[t] for t in tracks])


def print_table(title: str, names: list[str], rows: dict[str, dict[str, tuple]], note: str = "") -> None:
    width = max(len(label) for label in rows) + 2
    print(f"\n{title}")
    if note:
        print(note)
    print(" " * width + "".join(f"{n:<20}" for n in names))
    for label, found in rows.items():
        print(f"{label:<{width}}" + "".join(
            f"{found[n][0]:.2f} [{found[n][1]:.2f},{found[n][2]:.2f}]  " if n in found else f"{'-':<20}"
            for n in names))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench_detection")
    parser.add_argument("--profile", default="small", help="synthetic profile: tiny, small or bench")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="dataset seeds")
    parser.add_argument("--datasets", nargs="+", default=DEFAULT_DATASETS, choices=list(DATASETS))
    parser.add_argument("--scorers", nargs="+", default=DEFAULT_SCORERS,
                        help=f"labels ({', '.join(SCORERS)}) or label=method:key=value,...")
    parser.add_argument("--umx-preset", default="tiny", help="Open-Unmix preset of the baselines (tiny, small)")
    parser.add_argument("--epochs", type=int, default=10, help="baseline training epochs")
    parser.add_argument("--save-every", type=int, default=2,
                        help="keep every K-th epoch of the baselines (for the attribute-checkpoints scorers)")
    parser.add_argument("--reference-epochs", type=int,
                        help="reference-model training epochs (default: as many updates as the baseline's, "
                        "epochs x train songs / reference songs)")
    parser.add_argument("--targets", nargs="+", default=list(STEMS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--draws", type=int, default=1000, help="bootstrap replicates")
    parser.add_argument("--per-target", action="store_true",
                        help="also print each target's AUROC (a target's score against its own stem's truth)")
    parser.add_argument("--json", help="also write every per-seed AUROC to this file")
    args = parser.parse_args(argv)

    logging.basicConfig(format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    logging.getLogger("sepclean").setLevel(logging.INFO)  # the stages say what they make
    from sepclean.train import main as dora_main

    cfg = OmegaConf.to_container(dora_main.get_xp([]).cfg, resolve=True)
    store = ArtifactStore(Path(args.out).resolve() / "artifacts")
    scorers = [parse_scorer(s) for s in args.scorers]
    known = {**SCORERS, **{label: (method, settings) for label, method, settings in scorers}}
    for label, method, settings in scorers:
        if method != "fusion":
            create(method, **settings)  # unknown methods or settings fail before anything runs
    tables: dict[tuple[str, str], list[tuple[ScoreTable, dict]]] = {}
    for seed in args.seeds:
        for name in args.datasets:
            bench = Bench(store, cfg, args, name, seed, known)
            for label, _, _ in scorers:
                tables.setdefault((label, name), []).append((bench.table(label), bench.data.contamination))

    rng = np.random.default_rng(0)
    results, per_seed = {}, {}
    targets = [UNIFIED] + (args.targets if args.per_target else [])
    for (label, name), found in tables.items():
        for target in targets:
            cells = [cell(table, truth, target) for table, truth in found]
            results.setdefault(target, {}).setdefault(label, {})[name] = bootstrap(cells, args.draws, rng)
            per_seed.setdefault(target, {}).setdefault(label, {})[name] = [rank_auroc(v, b) for v, b in cells]

    auto = {label: {name: auto_ratio(found) for (lab, name), found in tables.items() if lab == label}
            for label, _, _ in scorers}

    tuned = [n for n in args.datasets if DATASETS[n][0] not in HELDOUT_PRESETS]
    heldout = [n for n in args.datasets if DATASETS[n][0] in HELDOUT_PRESETS]
    setting = (f"profile {args.profile}, seeds {' '.join(map(str, args.seeds))}, Open-Unmix {args.umx_preset} "
               f"baselines ({args.epochs} epochs); mean over seeds [95% hierarchical bootstrap interval]")
    for names, family in ((tuned, "tuned datasets"), (heldout, "held-out family (never tuned on)")):
        if not names:
            continue
        for target in targets:
            what = "unified per-song score" if target == UNIFIED else f"the {target} score against {target}'s truth"
            print_table(f"Detection AUROC, {what}: {family}", names, results[target], setting if target == UNIFIED
                        else "")
        print(f"\n--ratio auto on the unified score, {family}: songs kept / contaminated songs among those removed "
              "(mean over seeds; the pools are half contaminated)")
        width = max(map(len, auto)) + 2
        print(" " * width + "".join(f"{n:<20}" for n in names))
        for label, found in auto.items():
            print(f"{label:<{width}}" + "".join(f"{found[n][0]:>4.0%} / " + (f"{found[n][1]:>4.0%}" if np.isfinite(
                found[n][1]) else "   -") + " " * 9 for n in names))
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": vars(args), "auroc": results, "per_seed": per_seed,
                                               "auto": auto}, indent=1))


def auto_ratio(found: list[tuple[ScoreTable, dict]]) -> tuple[float, float]:
    """``--ratio auto`` on the unified score: (mean fraction kept, mean share of contaminated songs
    among the removed ones; NaN where nothing is removed)."""
    kept, precision = [], []
    for table, truth in found:
        keep = set(auto_keep(table.column(UNIFIED), table.metadata.get("cut")))
        removed = [t for t in table.tracks if t not in keep]
        kept.append(len(keep) / len(table.tracks))
        if removed:
            precision.append(np.mean([truth["tracks"][t]["contaminated"] for t in removed]))
    return float(np.mean(kept)), float(np.mean(precision)) if precision else float("nan")


if __name__ == "__main__":
    main()
