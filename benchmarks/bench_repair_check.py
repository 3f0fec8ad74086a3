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

``--receiver`` and ``--tolerance`` take several values: one table per combination, the songs separated
once. Every table adds the sum of the gains over all flagged pairs (a pair not changed counts 0) and
three views against the mixture's truth, the truth whose stems sum to the song's mixture: a stem's
clean twin plus the leaks of it that bleeding planted in other stems (for other kinds the twin). A
model separating a bled mixture hears a stem's leaked copies as that stem, so against the twin it
looks worse than it is. The three: the changed pairs' Δ SDR to it, the Δ SDR of each changed song's
whole label set (its stems end to end), and its receivers' SDR to it after the residual.

    python benchmarks/bench_repair_check.py --archs openunmix hdemucs --out outputs/bench_repair
"""

from __future__ import annotations

import argparse
import itertools
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
    parser.add_argument("--tolerance", type=float, nargs="+", default=[1.0])
    parser.add_argument("--receiver", nargs="+", default=["order"], help="repair.receiver rule(s)")
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
    from sepclean.synth.effects import bleed
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
    separations = {}  # arch -> (its models, track -> estimates): each song separated once

    def attributed(track_id: str, stem: str) -> np.ndarray:
        """The stem's truth in a song whose stems sum to its mixture: the clean twin plus its leaks."""
        clean = twin[track_id]
        leaks = (truth[track_id]["params"] or {}).get("leaks", []) if truth[track_id]["kind"] == "bleeding" else []
        return clean.read(stem) + sum((bleed(clean.read(stem), clean.sample_rate,
                                             **{k: v for k, v in leak.items() if k not in ("source", "destination")})
                                       for leak in leaks if leak["source"] == stem), np.zeros(1, np.float32))

    for arch, receiver, tolerance in itertools.product(args.archs, args.receiver, args.tolerance):
        settings = RepairSettings(tolerance=tolerance, margin=args.margin, receiver=receiver)
        model = experiment.train(arch, data, "reference")
        adapter = toolkits.get(cfg["archs"][arch]["toolkit"])
        if arch not in separations:
            units = adapter.checkpoint_units(model.checkpoint)
            separations[arch] = ({u: adapter.load(model.checkpoint, u) for u in units}, {})
        models, cache = separations[arch]

        def separate(track, mixture):
            if track.id not in cache:
                cache[track.id] = adapter.separate(models, mixture, track.sample_rate)
            return cache[track.id]

        folder = out / "repairs" / f"{args.action}_{arch}_{args.seed}_{receiver}_{tolerance:g}_{args.margin:g}"
        clean = repair_manifest(CleanManifest.load(drop), train, separate, settings, folder, {"arch": arch},
                                action=args.action)
        clean.write(folder / "clean.json")
        record, changed = clean.extra[args.action], CHANGED[args.action]
        rows, songs, consistent = {}, {}, {}
        for track_id, replaced in clean.replace.items():
            stems = list(train.stems)
            new = {s: audio.read(folder / replaced[s]["path"])[0] if s in replaced else train[track_id].read(s) for s in stems}
            truths = {s: attributed(track_id, s) for s in stems}
            whole = lambda labels, which: np.concatenate([labels[s] for s in which], axis=-1)  # noqa: E731
            # the receivers: stems replaced that are no changed pair's
            moved = [s for s in replaced if not any(d["track"] == track_id and d["stem"] == s and d["decision"] in changed
                                                  for d in record["decisions"])]
            songs[track_id] = (sdr(whole(truths, stems), whole(new, stems))
                               - sdr(whole(truths, stems), whole({s: train[track_id].read(s) for s in stems}, stems)),
                               sdr(whole(truths, moved), whole(new, moved)) if moved else None)
        for d in record["decisions"]:
            kind = truth[d["track"]]["kind"]
            if kind == "label_noise":
                kind += " (swap)" if any(d["stem"] in pair for pair in truth[d["track"]]["params"]["swaps"]) else " (move)"
            gain = None
            if d["decision"] in changed:
                new, _ = audio.read(folder / clean.replace[d["track"]][d["stem"]]["path"])
                reference = twin[d["track"]].read(d["stem"])
                gain = sdr(reference, new) - sdr(reference, train[d["track"]].read(d["stem"]))
                reference = attributed(d["track"], d["stem"])
                consistent[d["track"], d["stem"]] = sdr(reference, new) - sdr(reference, train[d["track"]].read(d["stem"]))
            rows.setdefault(kind, []).append((d, gain))
        calibration = record["model_sdr_db"]

        def mean_consistent(items) -> str:
            found = [consistent[d["track"], d["stem"]] for d, g in items if g is not None]
            return f"{np.mean(found):+.2f}" if found else "-"

        def mean_receivers(items) -> str:
            """The songs' Δ SDR to the truth (mean) | their receivers' SDR to the truth after (median)."""
            found = [songs[t] for t in {d["track"] for d, _ in items} if t in songs]
            after = [r for _, r in found if r is not None]
            return (f"{np.mean([d for d, _ in found]):+.2f} ({len(found)})" if found else "-") + " | " + \
                (f"{np.median(after):+.1f} ({len(after)})" if after else "-")
        print(f"\n{arch} reference model ({model.epochs}), {args.action}, receiver {receiver}, margin {args.margin:g} dB, "
              f"tolerance {tolerance:g} dB, seed {args.seed}; its median SDR against unflagged labels: "
              + ", ".join(f"{s} {v:.1f}" for s, v in calibration.items()))
        if args.action != "repair":
            print(f"| kind | pairs | {' | '.join(changed)} | label SDR dB (median) "
                  f"| Δ SDR to the truth, changed (mean; restored exactly at {SDR_CEILING:g}) | to the mixture's truth | sum over pairs "
                  "| song Δ SDR to the truth (mean) | receivers' SDR to the truth (median) |")
            print("|---|---:|" + "---:|" * len(changed) + "---:|---:|---:|---:|---:|---:|")
            for kind, items in sorted(rows.items()):
                gains = [g for _, g in items if g is not None]
                counts = " | ".join(str(sum(d["decision"] == c for d, _ in items)) for c in changed)
                print(f"| {kind} | {len(items)} | {counts} | {np.median([d['label_sdr_db'] for d, _ in items]):+.1f} "
                      f"| {f'{np.mean(gains):+.2f}' if gains else '-'} | {mean_consistent(items)} | {sum(gains):+.1f} "
                      f"| {mean_receivers(items)} |")
            total = [g for items in rows.values() for _, g in items if g is not None]
            counts = " | ".join(str(sum(d["decision"] == c for items in rows.values() for d, _ in items)) for c in changed)
            print(f"| all | {sum(map(len, rows.values()))} | {counts} | | {f'{np.mean(total):+.2f}' if total else '-'} "
                  f"| {mean_consistent([i for items in rows.values() for i in items])} | {sum(total):+.1f} | {mean_receivers([i for items in rows.values() for i in items])} |")
            continue
        print("| kind | pairs | repaired | refused: label / receiver | receiver move dB (median; repaired / refused) "
              "| label SDR dB (median) | remix SDR dB (median) | Δ SDR to the truth, repaired (mean) | to the mixture's truth "
              "| sum over pairs "
              "| song Δ SDR to the truth (mean) | receivers' SDR to the truth (median) |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for kind, items in sorted(rows.items()):
            moves = {k: [d["receiver_change_db"] for d, _ in items if (d["decision"] == "repaired") == k
                         and d["receiver_change_db"] is not None] for k in (True, False)}
            gains = [g for _, g in items if g is not None]
            med = lambda v: f"{np.median(v):+.1f}" if v else "-"  # noqa: E731
            refused = [sum(d["refused_by"] == why for d, _ in items) for why in ("label", "receiver")]
            print(f"| {kind} | {len(items)} | {sum(d['decision'] == 'repaired' for d, _ in items)} "
                  f"| {refused[0]} / {refused[1]} | {med(moves[True])} / {med(moves[False])} | {med([d['label_sdr_db'] for d, _ in items])} "
                  f"| {med([d['remix_sdr_db'] for d, _ in items])} | {f'{np.mean(gains):+.2f}' if gains else '-'} "
                  f"| {mean_consistent(items)} | {sum(gains):+.1f} | {mean_receivers(items)} |")
        total = [g for items in rows.values() for _, g in items if g is not None]
        print(f"| all | {sum(map(len, rows.values()))} | {len(total)} | | | | | {f'{np.mean(total):+.2f}' if total else '-'} "
              f"| {mean_consistent([i for items in rows.values() for i in items])} | {sum(total):+.1f} | {mean_receivers([i for items in rows.values() for i in items])} |")


if __name__ == "__main__":
    main()
