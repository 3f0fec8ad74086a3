"""``sepclean filter``: keep the best-scoring fraction of the training songs as a clean manifest."""

from __future__ import annotations

import argparse

from sepclean.clean_manifest import CleanManifest
from sepclean.filtering import AUTO, MODES, clean_manifest, matched_manifest
from sepclean.scores import ScoreTable


def configure(parser) -> None:
    parser.add_argument("scores", help="a scores directory (scores.csv + meta.json) written by a scoring method")
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--ratio", type=_ratio,
                      help="fraction of songs kept, e.g. 0.75, or 'auto': a two-component mixture fitted to "
                      "the scores decides (exactly the scores >= the table's cut when it has one)")
    size.add_argument("--like", metavar="CLEAN_JSON",
                      help="keep as many songs per list as this clean manifest does, in its mode (e.g. the "
                      "random control at the size another method chose with --ratio auto)")
    parser.add_argument("--mode", choices=MODES, default="unified",
                        help="one kept set, or one per target (with --like: that manifest's mode)")
    parser.add_argument("--action", choices=("drop", "weight"), default="drop",
                        help="drop the pairs not kept, or keep every pair with a loss weight: the clean posterior of "
                        "the auto fit (with --ratio auto; sepclean.actions). Repair: `sepclean repair`")
    parser.add_argument("-o", "--output", required=True, help="clean manifest to write (.json)")
    parser.add_argument(
        "--contamination", help="a synthetic dataset's contamination.json: also report what was removed"
    )


def _ratio(text: str) -> float | str:
    if text == AUTO:
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a fraction in (0, 1] or {AUTO!r}, not {text!r}") from None


def run(args) -> int:
    table = ScoreTable.read(args.scores)
    if args.action == "weight":
        from sepclean.actions import weight_manifest
        from sepclean.cli import CommandError

        if args.ratio != AUTO:
            raise CommandError("--action weight weighs every pair by the clean posterior of the auto fit: use --ratio auto")
        clean = weight_manifest(table, args.mode)
        clean.write(args.output)
        print(f"wrote {args.output}: {table.method} scores, every pair kept with a loss weight, {clean.mode}")
        for target, weights in clean.weights.items():
            values = list(weights.values())
            print(f"  {target}: mean weight {sum(values) / len(values):.2f}, {sum(w < 0.5 for w in values)} below 0.5")
        return 0
    if args.like:
        clean = matched_manifest(table, CleanManifest.load(args.like))
        how = f"as many songs as {args.like}"
    else:
        clean = clean_manifest(table, args.ratio, args.mode)
        how = f"ratio {args.ratio}"
    truth = None
    if args.contamination:
        from sepclean.detection import load_contamination

        truth = load_contamination(args.contamination)["tracks"]
    clean.write(args.output)
    lists = clean.keep if clean.per_target else {"all targets": clean.keep}
    print(f"wrote {args.output}: {table.method} scores, {how}, {clean.mode}")
    for target, kept in lists.items():
        kept_set = set(kept)
        removed = [t for t in table.tracks if t not in kept_set]
        line = f"  {target}: kept {len(kept)}, removed {len(removed)}"
        if truth is not None:
            bad = sum(bool(truth.get(t, {}).get("contaminated")) for t in removed)
            line += f" ({bad} of them contaminated)"
        print(line)
    return 0
