"""``sepclean demo``: the main job on the embedded default, a synthetic mixed23 dataset.

Generates the dataset (once; reused when already there), describes every split with a manifest,
scores the training pool by per-song FAD against the reference set (built-in features), writes a
clean manifest keeping 75% per target, and prints how well the scores found the contamination.
Each step is the same code the individual commands run, so the demo doubles as an end-to-end
check of a fresh installation.
"""

from __future__ import annotations

from pathlib import Path

from sepclean.scan import scan
from sepclean.synth import CLEAN_TWIN, CONTAMINATION_FILE, SPLITS, generate_dataset, read_contamination


def configure(parser) -> None:
    parser.add_argument("--out", default="runs/demo", help="working folder (default: %(default)s)")
    parser.add_argument("--profile", default="small", help="synthetic profile (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: cores)")


def synthesize(data: Path, args) -> None:
    if (data / CONTAMINATION_FILE).is_file():
        print(f"[1] reusing the synthetic dataset in {data}")
        return
    print(f"[1] generating a synthetic mixed23 dataset ({args.profile} profile) in {data}")
    summary = generate_dataset(
        data, preset="mixed23", profile=args.profile, seed=args.seed, workers=args.workers, progress=True,
        overwrite=data.exists(),
    )
    print(f"    {summary.audio_seconds:.0f} s of audio, {summary.realtime_per_worker:.0f}x real time per worker")


def describe(data: Path, manifests: Path) -> dict[str, Path]:
    print(f"[2] writing manifests to {manifests}")
    paths = {}
    for split in (*SPLITS, CLEAN_TWIN):
        manifest, problems = scan([data / split], progress=False)
        if problems:
            raise RuntimeError(f"generated data failed validation: {problems[0]}")
        paths[split] = manifests / f"{split}.jsonl"
        manifest.write(paths[split])
        hours = sum(t.duration for t in manifest) / 3600
        print(f"    {split:<12} {len(manifest):>4} tracks  {hours * 60:6.1f} min  {paths[split]}")
    return paths


def run(args) -> int:
    out = Path(args.out)
    data = out / "data"
    synthesize(data, args)
    manifests = describe(data, out / "manifests")
    contamination = read_contamination(data)
    truth = contamination["tracks"]
    kinds: dict[str, int] = {}
    for record in truth.values():
        kinds[record["kind"] or "clean"] = kinds.get(record["kind"] or "clean", 0) + 1
    print("[3] the training pool: " + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())))
    print(f"    ground truth: {data / CONTAMINATION_FILE}")
    score_and_filter(out, manifests, data, contamination)
    return 0


def score_and_filter(out: Path, manifests: dict[str, Path], data: Path, contamination: dict) -> None:
    from sepclean.cli import main
    from sepclean.detection import report
    from sepclean.scores import ScoreTable

    scores, clean = out / "scores" / "fad", out / "clean.json"
    print(f"[4] per-song FAD of the training pool against the reference set -> {scores}")
    status = main(["score", "fad", "--train", str(manifests["train"]), "--reference", str(manifests["reference"]),
                   "-o", str(scores), "--quiet"])
    if status:
        raise RuntimeError(f"sepclean score fad exited with {status}")
    found = report(ScoreTable.read(scores), contamination)
    per_kind = ", ".join(f"{kind} {value:.2f}" for kind, value in found["kind"].items())
    per_target = ", ".join(f"{target} {value:.2f}" for target, value in found["target"].items())
    print(f"    detection AUROC {found['overall']:.2f} (by kind: {per_kind}; by target: {per_target})")
    print(f"[5] clean manifest keeping 75% of the songs per target -> {clean}")
    main(["filter", str(scores), "--ratio", "0.75", "--mode", "per-target", "-o", str(clean),
          "--contamination", str(data / CONTAMINATION_FILE)])
