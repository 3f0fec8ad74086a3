"""``sepclean repair``: repair (or relabel) the pairs a clean manifest drops, by a trained model's separations."""

from __future__ import annotations

from pathlib import Path

from sepclean.actions import CHANGED, DEFAULT_RESIDUAL, FALLBACKS, RECEIVERS, RepairSettings, repair_with_model
from sepclean.clean_manifest import MODEL_ACTIONS
from sepclean.cli import CommandError
from sepclean.clean_manifest import CleanManifest
from sepclean.manifest import Manifest


def configure(parser) -> None:
    parser.add_argument("clean", help="a drop clean manifest (sepclean filter's): the pairs it leaves out are repaired")
    parser.add_argument("--train", required=True, help="the dataset manifest it filters")
    parser.add_argument("--toolkit", required=True, help="the model's toolkit (openunmix, demucs)")
    parser.add_argument("--checkpoint", required=True,
                        help="the model that separates the pseudo-labels (e.g. one trained on the trusted references)")
    parser.add_argument("-o", "--output", required=True,
                        help="a new folder: clean.json and the repaired audio (audio/<track>/...) are written there, once")
    parser.add_argument("--action", choices=MODEL_ACTIONS, default="repair",
                        help="repair: replace a flagged label by the model's estimate (the residual to another stem); "
                        "relabel: permute a song's flagged labels among its stems where the model says they were "
                        "swapped; relabel+repair: relabel, then repair the flagged pairs left (default: repair)")
    parser.add_argument("--residual", nargs="+", metavar="STEM",
                        help=f"stems that may receive a song's residual (default: {' '.join(DEFAULT_RESIDUAL)})")
    parser.add_argument("--receiver", choices=RECEIVERS,
                        help="split: shares of the residual to those stems by least squares against the model's "
                        "estimates; best: all to the one whose label moves least; order: all to the first not "
                        "repaired (default: split)")
    parser.add_argument("--fallback", choices=FALLBACKS, help="a pair whose repair fails the check (default: drop)")
    parser.add_argument("--tolerance", type=float,
                        help="dB the receiver's label may move away from the model's estimate of it (default: 1.0)")
    parser.add_argument("--margin", type=float,
                        help="dB a flagged label must agree with the model's estimate less than the unflagged labels "
                        "do; relabel: dB a moved label must agree better with its new stem than with its old one "
                        "(default: 3.0)")
    parser.add_argument("--device", default="cpu")


def run(args) -> int:
    output = Path(args.output)
    if (output / "clean.json").exists():
        raise CommandError(f"{output / 'clean.json'} exists: repaired audio is written once, choose a new folder")
    settings = RepairSettings.of({"residual": args.residual, "receiver": args.receiver, "fallback": args.fallback,
                                  "tolerance": args.tolerance, "margin": args.margin})
    clean = repair_with_model(CleanManifest.load(args.clean), Manifest.load(args.train), args.toolkit,
                              Path(args.checkpoint), settings, output, args.device, action=args.action)
    counts = clean.extra[args.action]["counts"]
    changed = ", ".join(f"{counts[d]} pair(s) {d}" for d in CHANGED[args.action])
    print(f"wrote {output / 'clean.json'}: {changed}, {counts['dropped']} dropped, {counts['kept']} kept as they "
          f"were; decisions in its {args.action!r} record")
    return 0
