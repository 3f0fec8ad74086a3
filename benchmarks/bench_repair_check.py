"""What the repair's consistency check decides, against the ground truth (a diagnostic).

On the synthetic mixed23 pool (the pipeline's data, ``size=cpu``: small profile, heavy severity), the
oracle flags exactly the contaminated (song, stem) pairs; each repair model separates those songs
(``sepclean.actions.repair_manifest``, the pipeline's own code) and this prints, per corruption kind:
how many pairs the check accepts and which of its tests refused the others, what it measured (the
label's SDR against the estimate, beside the model's median on unflagged labels: the label test; the
receiver's move: the receiver test; the song's remix SDR of the estimates: ClearSep's), and what
matters, whether the repaired label is closer to the truth (the clean twin's stem) than the old
one: SDR(twin, new) − SDR(twin, old) in dB.

The repair models are the ``reference_only`` control's (each architecture trained on the trusted
references through the pipeline's artifacts, cached under ``--out``), as ``repair.model=reference``
uses them; ``--epochs`` sets their training (x ``epoch_updates``).

``--action relabel`` and ``--action relabel+repair`` measure those instead (a table of how many pairs
each decision changed and what they gained); ``--set`` adds config overrides (e.g. a grid's, to share its artifacts).

    python benchmarks/bench_repair_check.py --archs openunmix hdemucs --out outputs/bench_repair
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf


SDR_CEILING = 60.0
"""dB: a label restored sample for sample (a relabelled swap) counts as this close to the truth, not as
the ~200 dB of float rounding, so that it does not swamp a mean."""


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    num = float(np.sum(np.square(reference, dtype=np.float64)))
    den = float(np.sum(np.square(reference - estimate, dtype=np.float64)))
    return min(10 * math.log10(max(num, 1e-20) / max(den, 1e-20)), SDR_CEILING)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["openunmix"])
    parser.add_argument("--epochs", type=int, nargs="+", help="per arch: epochs of the reference model (default: size=cpu's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=1.0)
    parser.add_argument("--margin", type=float, default=3.0)
    parser.add_argument("--action", choices=["repair", "relabel", "relabel+repair"], default="repair")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more config overrides")
    parser.add_argument("--out", default="outputs/bench_repair")
    args = parser.parse_args()
    logging.basicConfig(format="%(message)s", stream=sys.stdout)
    logging.getLogger("sepclean.pipeline").setLevel(logging.INFO)  # the stages say what they make

    from sepclean import audio, toolkit as toolkits
    from sepclean.actions import CHANGED, RepairSettings, repair_manifest
    from sepclean.clean_manifest import CleanManifest
    from sepclean.pipeline.artifacts import ArtifactStore
    from sepclean.pipeline.experiment import Experiment
    from sepclean.train import main as dora_main

    out = Path(args.out).resolve()
    overrides = ["size=cpu", "method=oracle", "ratio=auto", "mode=per-target", f"seed={args.seed}", *args.set]
    for arch, epochs in zip(args.archs, args.epochs or []):
        overrides.append(f"archs.{arch}.epochs={epochs}")
    cfg = OmegaConf.to_container(dora_main.get_xp(overrides).cfg, resolve=True)
    experiment = Experiment(cfg, ArtifactStore(out / "artifacts"), out / "demucs", progress=False)
    data = experiment.data()
    train, twin = data.manifest("train"), data.manifest("train_clean")
    truth = data.contamination["tracks"]
    _, drop = experiment.cleaning(data, "oracle", "auto", "per-target")
    settings = RepairSettings(tolerance=args.tolerance, margin=args.margin)

    for arch in args.archs:
        model = experiment.train(arch, data, "reference")
        adapter = toolkits.get(cfg["archs"][arch]["toolkit"])
        units = adapter.checkpoint_units(model.checkpoint)
        models = {u: adapter.load(model.checkpoint, u) for u in units}
        folder = out / "repairs" / f"{args.action}_{arch}_{args.seed}_{args.tolerance:g}_{args.margin:g}"
        clean = repair_manifest(CleanManifest.load(drop), train,
                                lambda track, mixture: adapter.separate(models, mixture, track.sample_rate),
                                settings, folder, {"arch": arch}, action=args.action)
        clean.write(folder / "clean.json")
        record, changed = clean.extra[args.action], CHANGED[args.action]
        rows = {}
        for d in record["decisions"]:
            kind = truth[d["track"]]["kind"]
            if kind == "label_noise":
                kind += " (swap)" if any(d["stem"] in pair for pair in truth[d["track"]]["params"]["swaps"]) else " (move)"
            gain = None
            if d["decision"] in changed:
                new, _ = audio.read(folder / clean.replace[d["track"]][d["stem"]]["path"])
                reference = twin[d["track"]].read(d["stem"])
                gain = sdr(reference, new) - sdr(reference, train[d["track"]].read(d["stem"]))
            rows.setdefault(kind, []).append((d, gain))
        calibration = record["model_sdr_db"]
        print(f"\n{arch} reference model ({model.epochs}), margin {args.margin:g} dB, tolerance {args.tolerance:g} dB, "
              f"seed {args.seed}; its median SDR against unflagged labels: "
              + ", ".join(f"{s} {v:.1f}" for s, v in calibration.items()))
        if args.action != "repair":
            print(f"| kind | pairs | {' | '.join(changed)} | label SDR dB (median) "
                  f"| Δ SDR to the truth, changed (mean; restored exactly at {SDR_CEILING:g}) |")
            print("|---|---:|" + "---:|" * len(changed) + "---:|---:|")
            for kind, items in sorted(rows.items()):
                gains = [g for _, g in items if g is not None]
                counts = " | ".join(str(sum(d["decision"] == c for d, _ in items)) for c in changed)
                print(f"| {kind} | {len(items)} | {counts} | {np.median([d['label_sdr_db'] for d, _ in items]):+.1f} "
                      f"| {f'{np.mean(gains):+.2f}' if gains else '-'} |")
            continue
        print("| kind | pairs | repaired | refused: label / receiver | receiver move dB (median; repaired / refused) "
              "| label SDR dB (median) | remix SDR dB (median) | Δ SDR to the truth, repaired (mean) |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for kind, items in sorted(rows.items()):
            moves = {k: [d["receiver_change_db"] for d, _ in items if (d["decision"] == "repaired") == k
                         and d["receiver_change_db"] is not None] for k in (True, False)}
            gains = [g for _, g in items if g is not None]
            med = lambda v: f"{np.median(v):+.1f}" if v else "-"  # noqa: E731
            refused = [sum(d["refused_by"] == why for d, _ in items) for why in ("label", "receiver")]
            print(f"| {kind} | {len(items)} | {sum(d['decision'] == 'repaired' for d, _ in items)} "
                  f"| {refused[0]} / {refused[1]} | {med(moves[True])} / {med(moves[False])} | {med([d['label_sdr_db'] for d, _ in items])} "
                  f"| {med([d['remix_sdr_db'] for d, _ in items])} | {f'{np.mean(gains):+.2f}' if gains else '-'} |")


if __name__ == "__main__":
    main()
