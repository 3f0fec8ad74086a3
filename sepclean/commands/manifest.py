"""``sepclean manifest``: describe dataset roots as a JSONL manifest, validating every track."""

from __future__ import annotations

import sys

import sepclean
from sepclean.cli import CommandError
from sepclean.scan import ScanError, scan


def configure(parser) -> None:
    parser.add_argument("roots", nargs="+", help="dataset roots: track folders inside, or .stem.mp4 files")
    parser.add_argument("-o", "--output", required=True, help="manifest to write (.jsonl)")
    parser.add_argument(
        "--stems", default=",".join(sepclean.STEMS), help="comma-separated stem names (default: %(default)s)"
    )
    parser.add_argument("--strict", action="store_true", help="fail on the first problem")
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
    manifest.write(args.output)
    hours = sum(t.duration for t in manifest) / 3600
    print(f"wrote {args.output}: {len(manifest)} tracks, {hours:.2f} h, stems {', '.join(stems)}")
    if problems:
        print(f"skipped {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    return 0
