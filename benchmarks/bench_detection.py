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

Everything built is cached under ``--out``, keyed by what made it: datasets, manifests, baselines
(each target marked done when trained), attribution runs (shared by the scorings that only read
their ΔL) and every scores table. A rerun only computes what is missing; a cached item made with
other settings is an error that names it, never reused.

    python benchmarks/bench_detection.py                                   # small profile, 3 seeds
    python benchmarks/bench_detection.py --scorers fad attribute attribute-rank-worst
    python benchmarks/bench_detection.py --scorers 'mine=attribute:scoring=cosine,unified=worst'
    python benchmarks/bench_detection.py --profile bench --seeds 0 1 2 3 4 --umx-preset small --device cuda
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from scipy.stats import rankdata

from sepclean import STEMS
from sepclean.detection import labels, load_contamination
from sepclean.files import write_json
from sepclean.filtering import auto_keep
from sepclean.manifest import Manifest
from sepclean.scan import scan
from sepclean.scores import UNIFIED, ScoreTable
from sepclean.scorers import Baseline, ScoringTask, create
from sepclean.synth import generate_dataset

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
SPLITS = ("train", "valid", "reference")
REFERENCE_MODEL_METHODS = ("refloss", "refsdr")
"""Methods given the bench's reference model as ``checkpoint`` unless their settings name one."""


class BenchError(RuntimeError):
    pass


def digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]


def claim(folder: Path, spec: dict) -> None:
    """Mark ``folder`` as holding what ``spec`` describes; a folder holding something else is an error."""
    path = folder / "spec.json"
    if path.is_file():
        held = json.loads(path.read_text())
        if held != json.loads(json.dumps(spec, default=str)):
            raise BenchError(f"{folder} holds another item ({held}), not {spec}: remove it or use another --out")
        return
    folder.mkdir(parents=True, exist_ok=True)
    write_json(path, spec)


@dataclass
class Dataset:
    name: str
    seed: int
    root: Path
    manifests: dict[str, Path]

    @property
    def heldout(self) -> bool:
        return DATASETS[self.name][0] in HELDOUT_PRESETS

    def manifest(self, split: str) -> Manifest:
        return Manifest.load(self.manifests[split])


def dataset(out: Path, name: str, profile: str, seed: int) -> Dataset:
    preset, severity = DATASETS[name]
    root = out / "data" / f"{name}-{profile}-s{seed}"
    truth_path = root / "contamination.json"
    if truth_path.is_file():
        truth = load_contamination(root)
        found = (truth["preset"], truth["severity"], truth["seed"], truth["profile"]["name"])
        if found != (preset, severity, seed, profile):
            raise BenchError(f"{root} holds {found}, not {(preset, severity, seed, profile)}")
    else:
        log(f"generating {name} ({profile}, seed {seed})")
        generate_dataset(root, preset=preset, severity=severity, profile=profile, seed=seed, overwrite=True)
    manifests = {}
    for split in SPLITS:
        path = root.parent / f"{root.name}.manifests" / f"{split}.jsonl"
        if not path.is_file():
            manifest, problems = scan([root / split], progress=False)
            if problems:
                raise BenchError(f"{root / split}: {problems}")
            manifest.write(path)
        manifests[split] = path
    return Dataset(name, seed, root, manifests)


def train_models(folder: Path, train: Path, valid: Path, preset: str, epochs: int, targets: list[str],
                 save_every: int | None = None) -> Path:
    """Tiny Open-Unmix models of every target trained on ``train`` (each target marked done when
    finished; a killed run resumes from its last epoch); ``save_every``: keep every K-th epoch."""
    from sepclean_plugins.openunmix.train import main as train_umx

    claim(folder, {"train": Manifest.load(train).hash, "valid": Manifest.load(valid).hash, "preset": preset,
                   "epochs": epochs, "save_every": save_every})
    for target in targets:
        done = folder / f".{target}.done"
        if done.is_file():
            continue
        log(f"training {folder.name} {target}")
        argv = ["--manifest", str(train), "--valid-manifest", str(valid), "--target", target, "--output", str(folder),
                "--preset", preset, "--epochs", str(epochs), "--quiet"]
        if save_every:
            argv += ["--save-every", str(save_every)]
        if (folder / f"{target}.chkpnt").is_file():
            argv += ["--checkpoint", str(folder)]
        if train_umx(argv) != 0:
            raise BenchError(f"training {target} in {folder} failed")
        done.touch()
    return folder


def baseline(out: Path, data: Dataset, preset: str, epochs: int, targets: list[str], save_every: int) -> Path:
    """The noisy baseline: trained on the whole noisy pool, keeping every ``save_every``-th epoch."""
    return train_models(out / "baselines" / f"{data.root.name}-umx-{preset}-e{epochs}-k{save_every}",
                        data.manifests["train"], data.manifests["valid"], preset, epochs, targets, save_every)


def reference_model(out: Path, data: Dataset, preset: str, epochs: int, targets: list[str]) -> Path:
    """The reference model: trained on the references only (shared by datasets with the same references)."""
    name = f"references-{data.manifest('reference').hash[:12]}-umx-{preset}-e{epochs}"
    return train_models(out / "reference_models" / name, data.manifests["reference"], data.manifests["valid"],
                        preset, epochs, targets)


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


def score(out: Path, data: Dataset, label: str, method: str, settings: dict, models: "Models",
          device: str, known: dict[str, tuple[str, dict]]) -> ScoreTable:
    """The scores of one scorer on one dataset (cached). A ``fusion``'s components that name other
    scorers of the bench (``known``: label -> (method, settings)) are their cached tables; the
    reference-model methods get the bench's reference model."""
    settings = resolve(out, data, method, settings, models, device, known)
    scorer = create(method, **settings)
    base = models.baseline() if scorer.needs_baseline else None
    inputs = _inputs(data, scorer, base)
    folder = table_folder(out, data, label, method, settings, models)
    claim(folder, {"config": scorer.config(), **inputs})
    table_dir = folder / "table"
    if (table_dir / "scores.csv").is_file():
        return ScoreTable.read(table_dir)
    # Methods that compute something shared by several scorings (an attribution run's ΔL) work
    # in a folder keyed by that alone.
    run_config = getattr(scorer, "run_config", None)
    workdir = folder / "work"
    if run_config is not None:
        shared = {"config": run_config(), **inputs}
        workdir = out / "scores" / data.root.name / f"{method}-run-{digest(shared)}"
        claim(workdir, shared)
    task = ScoringTask(data.manifest("train"), data.manifest("reference"),
                       Baseline("openunmix", base) if base is not None else None,
                       load_contamination(data.root) if scorer.needs_truth else None, device, progress=False)
    start = time.perf_counter()
    table = scorer.score(task, workdir)
    log(f"{label} on {data.root.name}: {time.perf_counter() - start:.0f} s")
    table.write(table_dir)
    return table


class Models:
    """The dataset's noisy baseline and reference model, trained when first asked for."""

    def __init__(self, out: Path, data: Dataset, args):
        self.out, self.data, self.args = out, data, args

    def baseline(self) -> Path:
        a = self.args
        return baseline(self.out, self.data, a.umx_preset, a.epochs, a.targets, a.save_every)

    def reference(self) -> Path:
        a = self.args
        epochs = a.reference_epochs or a.epochs * max(1, round(len(self.data.manifest("train"))
                                                               / len(self.data.manifest("reference"))))
        return reference_model(self.out, self.data, a.umx_preset, epochs, a.targets)


def resolve(out: Path, data: Dataset, method: str, settings: dict, models: Models, device: str,
            known: dict[str, tuple[str, dict]]) -> dict:
    """Settings with the bench's own inputs filled in (fusion components, the reference model)."""
    if method == "fusion":
        methods = []
        for component in settings.get("methods", ()):
            if isinstance(component, str) and component in known:
                score(out, data, component, *known[component], models, device, known)
                component_settings = resolve(out, data, *known[component], models, device, known)
                component = str(table_folder(out, data, component, known[component][0], component_settings,
                                             models) / "table")
            methods.append(component)
        return {**settings, "methods": methods}
    if method in REFERENCE_MODEL_METHODS and "checkpoint" not in settings:
        return {**settings, "checkpoint": str(models.reference())}
    return settings


def _inputs(data: Dataset, scorer, base: Path | None) -> dict:
    return {"train": data.manifest("train").hash, "reference": data.manifest("reference").hash,
            "baseline": str(base) if scorer.needs_baseline else None}


def table_folder(out: Path, data: Dataset, label: str, method: str, settings: dict, models: Models) -> Path:
    scorer = create(method, **settings)
    base = models.baseline() if scorer.needs_baseline else None
    return out / "scores" / data.root.name / f"{label}-{digest({'config': scorer.config(), **_inputs(data, scorer, base)})}"


def auroc(values: np.ndarray, bad: np.ndarray) -> float:
    n_good, n_bad = int((~bad).sum()), int(bad.sum())
    if not n_good or not n_bad:
        return float("nan")
    ranks = rankdata(values)
    return float((ranks[~bad].sum() - n_good * (n_good + 1) / 2) / (n_good * n_bad))


def bootstrap(cells: list[tuple[np.ndarray, np.ndarray]], draws: int, rng: np.random.Generator):
    """Mean AUROC over seeds and its hierarchical-bootstrap 95% interval (seeds where one class is
    empty, e.g. no song with that stem contaminated, are left out)."""
    cells = [(v, b) for v, b in cells if b.any() and not b.all()]
    if not cells:
        return float("nan"), float("nan"), float("nan")
    mean = float(np.mean([auroc(v, b) for v, b in cells]))
    replicates = np.empty(draws)
    for k in range(draws):
        values = []
        for s in rng.integers(0, len(cells), len(cells)):
            v, b = cells[s]
            good, bad = np.flatnonzero(~b), np.flatnonzero(b)
            pick = np.concatenate([rng.choice(good, good.size), rng.choice(bad, bad.size)])
            values.append(auroc(v[pick], b[pick]))
        replicates[k] = np.mean(values)
    low, high = np.percentile(replicates, [2.5, 97.5])
    return mean, float(low), float(high)


def cell(table: ScoreTable, truth: dict, target: str = UNIFIED) -> tuple[np.ndarray, np.ndarray]:
    truth_labels = labels(truth, target=None if target == UNIFIED else target)
    column = table.column(target)
    tracks = [t for t in column if t in truth_labels]
    return np.array([column[t] for t in tracks]), np.array([truth_labels[t] for t in tracks])


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


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

    out = Path(args.out)
    scorers = [parse_scorer(s) for s in args.scorers]
    known = {**SCORERS, **{label: (method, settings) for label, method, settings in scorers}}
    for label, method, settings in scorers:
        if method != "fusion":
            create(method, **settings)  # unknown methods or settings fail before anything runs
    tables: dict[tuple[str, str], list[tuple[ScoreTable, dict]]] = {}
    for seed in args.seeds:
        for name in args.datasets:
            data = dataset(out, name, args.profile, seed)
            truth = load_contamination(data.root)
            models = Models(out, data, args)
            for label, method, settings in scorers:
                table = score(out, data, label, method, settings, models, args.device, known)
                tables.setdefault((label, name), []).append((table, truth))

    rng = np.random.default_rng(0)
    results, per_seed = {}, {}
    targets = [UNIFIED] + (args.targets if args.per_target else [])
    for (label, name), found in tables.items():
        for target in targets:
            cells = [cell(table, truth, target) for table, truth in found]
            results.setdefault(target, {}).setdefault(label, {})[name] = bootstrap(cells, args.draws, rng)
            per_seed.setdefault(target, {}).setdefault(label, {})[name] = [auroc(v, b) for v, b in cells]

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
