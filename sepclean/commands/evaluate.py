"""``sepclean evaluate``: separate a test manifest with a trained model and score it with museval."""

from __future__ import annotations

import argparse

from sepclean.manifest import Manifest
from sepclean.progress import bars
from sepclean.toolkit import available

HELP = "separate a test manifest and score it with museval"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--toolkit", required=True, choices=sorted(available()), help="the model's toolkit")
    parser.add_argument("--checkpoint", required=True, metavar="PATH",
                        help="trained model: Open-Unmix run folder, Demucs checkpoint or experiment folder")
    parser.add_argument("--test", required=True, metavar="MANIFEST", help="test tracks (a sepclean manifest)")
    parser.add_argument("-o", "--output", required=True, metavar="DIR",
                        help="writes museval/<track>.json, summary.json and summary.md here")
    parser.add_argument("--targets", nargs="+", metavar="TARGET",
                        help="targets to score (default: those the checkpoint holds a model for); the separation always uses every "
                        "target the checkpoint has, so a target's numbers do not depend on which others are asked")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="scoring processes (default: one per core; 1 scores in this process)")
    parser.add_argument("--device", help="where to separate (default: cuda when available, else cpu)")
    parser.add_argument("--sdr-only", action="store_true",
                        help="museval on each target alone: the same SDR and ISR, far faster with several "
                        "targets; no SIR or SAR")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    import torch

    from sepclean.evaluate import evaluate

    test = Manifest.load(args.test)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    evaluation = evaluate(args.toolkit, args.checkpoint, test, args.output, targets=args.targets,
                          workers=args.workers, device=device, progress=bars(not args.quiet), sdr_only=args.sdr_only)
    print(evaluation.table())
    for note in evaluation.notes():
        print(f"skipped {note}")
    print(f"\naverage SDR {evaluation.average:.2f} dB over {len(evaluation.targets)} target(s), "
          f"{len(evaluation.tracks)} track(s); wrote {args.output}/summary.json, summary.md and museval/")
    return 0
