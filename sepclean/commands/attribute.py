"""``sepclean attribute``: unlearning-based attribution through a toolkit's own model, loss and data."""

from __future__ import annotations

import warnings

from sepclean.attribution.run import MODES, Run, compare_modes, merge
from sepclean.cli import CommandError
from sepclean.manifest import Manifest
from sepclean.progress import bars
from sepclean.scorers import Baseline, ScoringTask, create
from sepclean.scorers.attribution import ShardPending


def configure(parser) -> None:
    parser.add_argument("--toolkit", required=True, help="openunmix or demucs (any registered toolkit)")
    parser.add_argument("--checkpoint", help="the baseline trained on the noisy set (run folder or file)")
    parser.add_argument("--train", metavar="MANIFEST", help="the training songs to score")
    parser.add_argument("--reference", metavar="MANIFEST", help="the trusted clean songs to unlearn")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="run directory (scores table)")
    parser.add_argument("--targets", nargs="+", help="targets to attribute (default: those the checkpoint holds a model for)")
    parser.add_argument("--mode", choices=MODES, default="exact",
                        help="exact: re-score every track after each unlearning step (as the paper); "
                        "linear: first-order estimate, one gradient per song")
    parser.add_argument("--strength", type=float, default=0.2,
                        help="relative rise of a reference's own loss that unlearning it causes; sets α "
                        "(default: %(default)s)")
    parser.add_argument("--alpha", type=float, help="the paper's α, used as given (overrides --strength)")
    parser.add_argument("--steps", type=int, default=1, help="unlearning steps per reference (default: 1)")
    parser.add_argument("--damping", type=float, default=0.0,
                        help="λ relative to the mean of the Fisher (default: 0, the paper's F⁻¹)")
    parser.add_argument("--parameters", metavar="REGEX", help="attribute only parameters whose name matches")
    parser.add_argument("--segment", type=float, help="excerpt seconds (default: the toolkit's deterministic one)")
    parser.add_argument("--batch-size", type=int, default=4, help="examples per forward pass (default: 4)")
    parser.add_argument("--shard", default="0/1",
                        help="i/K: exact mode computes references j with j mod K = i; linear mode the i-th of K runs "
                        "of training songs (in one shared -o; run every shard twice: first each sums its part of "
                        "the preconditioner, then each computes its songs)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compare-modes", type=int, metavar="M",
                        help="only report the Spearman correlation of linear vs exact ΔL on M references")
    parser.add_argument("--merge", nargs="+", metavar="DIR",
                        help="gather shards computed in these run directories into --output and finish it")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    if args.merge:
        merge(args.output, args.merge)
        print(f"merged {len(args.merge)} shard folder(s) into {args.output}")
        return 0
    if not (args.checkpoint and args.train and args.reference):
        raise CommandError("--checkpoint, --train and --reference are required (except with --merge)")
    train, reference = Manifest.load(args.train), Manifest.load(args.reference)
    scorer = create("attribute", targets=args.targets, mode=args.mode, strength=args.strength, alpha=args.alpha,
                    steps=args.steps, damping=args.damping, parameters=args.parameters, segment=args.segment,
                    batch_size=args.batch_size, shard=args.shard)
    if args.compare_modes:
        attribution = Run(args.toolkit, args.checkpoint, train, reference, args.output, args.targets,
                          scorer.settings(), args.device, progress=bars(not args.quiet))
        for unit, rho in compare_modes(attribution, args.compare_modes).items():
            print(f"{unit}: Spearman(linear, exact) = {rho:.3f} on {args.compare_modes} reference(s)")
        return 0
    task = ScoringTask(train, reference, Baseline(args.toolkit, args.checkpoint), device=args.device,
                       progress=bars(not args.quiet))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            scorer.score(task, args.output)
        except ShardPending as pending:
            print(f"{pending}; shards in separate folders: then `sepclean attribute --merge ...`")
            return 0
        finally:
            for warning in caught:
                print(f"warning: {warning.message}")
    print(f"wrote {args.output}: attribute scores (relative ΔL in {args.output}/relative, the model's own "
          f"loss in {args.output}/loss), ΔL array in {args.output}/delta_loss.npz")
    return 0
