"""``sepclean manifest``: describe dataset roots as a JSONL manifest, validating every track."""

from __future__ import annotations

import sys

import sepclean
from sepclean.cli import CommandError
from sepclean.render import render
from sepclean.scan import ScanError, scan


def configure(parser) -> None:
    parser.add_argument("roots", nargs="+", help="dataset roots: track folders inside, or .stem.mp4 files")
    parser.add_argument("-o", "--output", required=True, help="manifest to write (.jsonl)")
    parser.add_argument(
        "--stems", default=",".join(sepclean.STEMS), help="comma-separated stem names (default: %(default)s)"
    )
    parser.add_argument("--strict", action="store_true", help="fail on the first problem")
    parser.add_argument(
        "--render", metavar="DIR", default=None,
        help="write stems summed from several files (MoisesDB) to DIR/<track>/<stem>.wav, one file per "
        "stem as Open-Unmix and demucs read them, and describe those files (same hashes)",
    )
    parser.add_argument("--workers", type=int, default=None, help="parallel readers (default: cores, at most 8)")


def run(args) -> int:
    stems = [s.strip() for s in args.stems.split(",") if s.strip()]
    try:
        manifest, problems = scan(args.roots, stems=stems, strict=args.strict, workers=args.workers)
    except ScanError as e:
        raise CommandError(f"{e} (--strict: stopped at the first problem; nothing written)") from None
    if not manifest.tracks:
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        raise CommandError("no valid tracks found; nothing written")
    summed = sum(bool(t.summed_stems) for t in manifest)
    if args.render is not None:
        manifest = render(manifest, args.render, workers=args.workers)
    manifest.write(args.output)
    hours = sum(t.duration for t in manifest) / 3600
    print(f"wrote {args.output}: {len(manifest)} tracks, {hours:.2f} h, stems {', '.join(stems)}")
    if summed:
        where = f"rendered to {args.render}" if args.render is not None else "read as sums (--render writes them out)"
        print(f"{summed} track(s) have stems summed from several files (MoisesDB): {where}")
    if problems:
        print(f"skipped {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    return 0
