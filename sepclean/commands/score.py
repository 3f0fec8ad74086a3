"""``sepclean score fad|mlp``: score training songs against a trusted reference set, by per-song
FAD or by the MLP stem classifier, on a chosen embedding; writes the scores table all methods share.
"""

from __future__ import annotations

import argparse

import sepclean
from sepclean.progress import bars

HELP = "score training songs by per-song FAD or the MLP stem classifier"


def _frames(value: str) -> int | str:
    if value in ("auto", "all"):
        return value
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 2:
        raise argparse.ArgumentTypeError(f"expected auto, all or a number of frames >= 2, not {value!r}")
    return count


def _stems(value: str) -> list[str]:
    stems = [s.strip() for s in value.split(",") if s.strip()]
    if not stems:
        raise argparse.ArgumentTypeError("no stems given")
    return stems


def configure(parser: argparse.ArgumentParser) -> None:
    from sepclean.embeddings import BACKENDS, DEFAULT, DEFAULT_SILENCE_DB

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--train", required=True, metavar="MANIFEST", help="manifest of the songs to score")
    common.add_argument("--reference", required=True, metavar="MANIFEST", help="manifest of the trusted clean songs")
    common.add_argument("-o", "--output", required=True, metavar="DIR", help="scores directory to write")
    common.add_argument(
        "--embedding",
        choices=list(BACKENDS),
        default=DEFAULT,
        help="; ".join(f"{name}: {text}" for name, (_, text) in BACKENDS.items()) + " (default: %(default)s)",
    )
    common.add_argument(
        "--weights",
        metavar="PATH_OR_HF_ID",
        help="clap: a transformers folder, a Hugging Face id in the local cache (default laion/larger_clap_music) "
        "or a LAION-CLAP .pt file; mert: a folder or cached id (default m-a-p/MERT-v1-95M). Never downloaded",
    )
    common.add_argument("--layer", type=int, help="mert: hidden state to use, 0-12 (default: the last, as fadtk)")
    common.add_argument(
        "--stems", type=_stems, default=list(sepclean.STEMS), help="comma-separated stems to score (default: all four)"
    )
    common.add_argument(
        "--silence-db",
        type=float,
        default=DEFAULT_SILENCE_DB,
        help="frames at or below this RMS level (dBFS) are left out (default: %(default)s)",
    )
    common.add_argument(
        "--min-active",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="a source with less non-silent audio gets its target's median score (default: %(default)s)",
    )
    common.add_argument(
        "--cache", metavar="DIR", help="embedding cache (default: $SEPCLEAN_CACHE or ~/.cache/sepclean)"
    )
    common.add_argument("--batch-size", type=int, default=8, help="audio chunks per model call (default: %(default)s)")
    common.add_argument("--device", help="torch device (default: cuda when available; spectral: cpu)")
    common.add_argument("--seed", type=int, default=0, help="seed of frame subsets / MLP training (default: 0)")
    common.add_argument("--quiet", action="store_true", help="no progress bars")

    methods = parser.add_subparsers(dest="method", metavar="METHOD", required=True)
    fad = methods.add_parser(
        "fad", parents=[common], help="per-song Fréchet Audio Distance to the reference (blind)", description=HELP
    )
    fad.add_argument(
        "--unified",
        choices=["mean", "mixture"],
        default="mean",
        help="the per-song 'all' score: mean of the stems' scores, or the mixture's FAD (default: %(default)s)",
    )
    fad.add_argument(
        "--frames",
        type=_frames,
        default="auto",
        help="frames each song is scored on: auto (the fewest any song has, so that length does not bias the "
        "ranking), all (fadtk's per-song FAD, length-biased), or a number (default: %(default)s)",
    )
    fad.add_argument(
        "--draws", type=int, default=8, help="disjoint random frame subsets averaged per song (default: %(default)s)"
    )
    mlp = methods.add_parser(
        "mlp", parents=[common], help="stem classifier trained on the reference stems (noise-specific baseline)"
    )
    mlp.add_argument("--epochs", type=int, default=20, help="default: %(default)s")
    mlp.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: %(default)s)")
    mlp.add_argument("--train-batch-size", type=int, default=256, help="frames per step (default: %(default)s)")
    mlp.add_argument("--weight-decay", type=float, default=0.0, help="default: %(default)s")
    mlp.add_argument(
        "--frames-per-song",
        type=int,
        default=2000,
        help="training frames drawn from each reference stem, at most (default: %(default)s)",
    )


SETTINGS = {
    "fad": ("unified", "frames", "draws"),
    "mlp": ("epochs", "lr", "train_batch_size", "weight_decay", "frames_per_song"),
}
COMMON = ("embedding", "weights", "layer", "stems", "silence_db", "min_active", "cache", "batch_size", "seed")


def run(args: argparse.Namespace) -> int:
    import torch

    from sepclean.manifest import Manifest
    from sepclean.scorers import ScoringTask, create

    train, reference = Manifest.load(args.train), Manifest.load(args.reference)
    scorer = create(args.method, **{name: getattr(args, name) for name in (*COMMON, *SETTINGS[args.method])})
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    table = scorer.score(ScoringTask(train, reference, device=device, progress=bars(not args.quiet)), args.output)

    table.write(args.output)
    embedding = table.metadata["embedding"]
    print(
        f"wrote {args.output}: {table.method} scores of {len(table.tracks)} songs "
        f"({', '.join(table.targets)} and all), {embedding.get('name', args.embedding)} embeddings cached in "
        f"{table.metadata['cache']}"
    )
    for source, tracks in table.metadata["unscored"].items():
        print(f"  {source}: {len(tracks)} song(s) too quiet to score, given the median: {', '.join(tracks)}")
    return 0
