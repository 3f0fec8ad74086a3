"""Speed of the synthetic dataset generator: seconds of audio made per wall-clock second per worker.

Only train songs are timed (they cost the most: contamination and the clean twin are written
too), with the profile's song length. The target is at least 10x real time per core.

    python benchmarks/bench_synth.py --profile bench --songs 6 --workers 1
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile

from sepclean.synth import PRESETS, PROFILES, generate_dataset

TARGET = 10.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=list(PROFILES), default="bench")
    parser.add_argument("--preset", choices=list(PRESETS), nargs="+", default=list(PRESETS))
    parser.add_argument("--songs", type=int, default=6, help="train songs to generate per preset")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    profile = dataclasses.replace(PROFILES[args.profile], train=args.songs, valid=0, reference=0, test=0)
    for preset in args.preset:
        with tempfile.TemporaryDirectory() as root:
            summary = generate_dataset(root, preset=preset, profile=profile, seed=args.seed, workers=args.workers)
        verdict = "ok" if summary.realtime_per_worker >= TARGET else f"below the {TARGET:.0f}x target"
        print(
            f"{args.profile} {preset:8s} {args.songs} x {profile.duration:.0f} s songs, {summary.workers} worker(s): "
            f"{summary.wall_seconds:6.1f} s, {summary.realtime_per_worker:5.1f}x real time per worker ({verdict})"
        )


if __name__ == "__main__":
    main()
