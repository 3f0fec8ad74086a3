"""``sepclean synth``: generate a synthetic multitrack dataset with known contamination."""

from __future__ import annotations

import argparse
import os

from sepclean.cli import CommandError
from sepclean.errors import OutputError
from sepclean.progress import bars
from sepclean.synth import PRESETS, PROFILES, SEVERITIES, EffectsBackendError, generate_dataset
from sepclean.synth.contamination import DEFAULT_FRACTION
from sepclean.synth.effects import BACKENDS

HELP = "generate a synthetic multitrack dataset with known contamination"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="dataset root to create (MUSDB18-HQ layout)")
    parser.add_argument(
        "--preset",
        choices=list(PRESETS),
        default="mixed23",
        help="contamination of the train pool: none; label noise + bleeding; distortion/reverb/low-pass; "
        "heldout: wrong-song stems/bit-crush/lossy codec, for reporting only, never for tuning "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--profile",
        choices=list(PROFILES),
        default="small",
        help="songs per split and their length (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same audio (default: 0)")
    parser.add_argument(
        "--severity", choices=list(SEVERITIES), default="paper", help="contamination strength (default: paper)"
    )
    parser.add_argument(
        "--contaminated-fraction",
        type=float,
        metavar="F",
        help="fraction of the train pool contaminated, split evenly between the preset's kinds (default: "
        + ", ".join(f"{fraction} for {preset}" for preset, fraction in DEFAULT_FRACTION.items())
        + ")",
    )
    parser.add_argument(
        "--effects-backend",
        choices=list(BACKENDS),
        default="numpy",
        help="implementation of the effects preset; pedalboard (GPL-3) must be installed separately",
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count(), help="worker processes (default: number of cores)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a dataset already in OUT")


def run(args: argparse.Namespace) -> int:
    if args.workers is not None and args.workers < 1:
        raise CommandError("--workers must be at least 1")
    try:
        summary = generate_dataset(
            args.out,
            preset=args.preset,
            profile=args.profile,
            seed=args.seed,
            severity=args.severity,
            contaminated_fraction=args.contaminated_fraction,
            effects_backend=args.effects_backend,
            workers=args.workers,
            overwrite=args.overwrite,
            progress=bars(),
        )
    except (ValueError, FileExistsError, EffectsBackendError) as e:
        raise CommandError(str(e)) from e
    except OSError as e:
        raise OutputError(f"cannot write {e.filename or args.out}: {e.strerror or e}") from None

    splits = ", ".join(f"{split} {count}" for split, count in summary.tracks.items())
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(summary.kinds.items())) or "none"
    print(f"wrote {summary.root}: {splits} songs")
    print(f"contaminated train songs: {kinds} (see {summary.root / 'contamination.json'})")
    print(
        f"generated {summary.audio_seconds:.0f} s of audio in {summary.wall_seconds:.1f} s on {summary.workers} "
        f"worker(s): {summary.realtime_per_worker:.1f}x real time per worker"
    )
    return 0
