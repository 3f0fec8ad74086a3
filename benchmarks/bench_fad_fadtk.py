"""Per-song FAD, sepclean against fadtk 1.1.0's own code, side by side on the same embeddings.

fadtk is not a dependency. Download its wheel once (no dependencies needed)::

    pip download fadtk==1.1.0 --no-deps -d ~/wheels
    python benchmarks/bench_fad_fadtk.py --wheel ~/wheels/fadtk-1.1.0-py3-none-any.whl

(any zip holding its ``fadtk/fad.py`` will do: ``scripts/device/wheels.sh`` makes one for a GPU lease.)

The benchmark reads ``calc_embd_statistics`` and ``calc_frechet_distance`` out of the wheel's
``fadtk/fad.py`` (only those two functions, compiled on their own: fadtk's torch/audio imports and
its other dependencies are never imported) and times fadtk's per-song scoring the way its
``score_individual`` does it: the reference statistics once, then per song its statistics and the
distance. sepclean's side is ``FrechetReference`` on the same reference frames and
``distances_to_frames`` on the same songs. Both sides get the same correlated random 768-d frames
(MERT's size). Prints both times, the speed-up and the largest relative difference.

Both sides run with the same number of BLAS threads (``--threads``, default 1). Left to its default
of one thread per core on a machine whose cores are busy, fadtk's ``sqrtm`` (many small BLAS calls,
each a thread rendezvous) slowed twentyfold while sepclean's few large calls barely moved: a
157x "speed-up" that measured the contention, not the formula.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import logging
import types
import time
import zipfile
from pathlib import Path

import numpy as np
import scipy.linalg
from numpy.lib.scimath import sqrt as scisqrt
from threadpoolctl import threadpool_limits

from sepclean.fad import FrechetReference, Gaussian

FUNCTIONS = ("calc_embd_statistics", "calc_frechet_distance")


def scipy_linalg_for_fadtk() -> types.ModuleType | types.SimpleNamespace:
    """scipy.linalg as fadtk 1.1.0 calls it. fadtk calls ``sqrtm(A, disp=False)`` and discards the error
    estimate that ``disp=False`` adds; SciPy releases after 1.17 dropped ``disp`` (the TypeError seen on
    the lent GPU machine's SciPy). There, the same ``sqrtm`` with the estimate as None, nothing else
    changed."""
    if "disp" in inspect.signature(scipy.linalg.sqrtm).parameters:
        return scipy.linalg

    def sqrtm(a, disp=True, **options):
        root = scipy.linalg.sqrtm(a, **options)
        return root if disp else (root, None)

    return types.SimpleNamespace(**{name: getattr(scipy.linalg, name) for name in ("eig", "inv")}, sqrtm=sqrtm)


def load_fadtk(wheel: Path) -> dict:
    """fadtk's two functions, compiled from the wheel's source with only what they use in scope."""
    with zipfile.ZipFile(wheel) as archive:
        source = archive.read("fadtk/fad.py").decode()
    tree = ast.parse(source)
    picked = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in FUNCTIONS]
    if {node.name for node in picked} != set(FUNCTIONS):
        raise SystemExit(f"{wheel}: fadtk/fad.py lacks {FUNCTIONS}; is it fadtk 1.1.0?")
    namespace = {"np": np, "linalg": scipy_linalg_for_fadtk(), "scisqrt": scisqrt, "log": logging.getLogger("fadtk")}
    exec(compile(ast.Module(body=picked, type_ignores=[]), f"{wheel}!fadtk/fad.py", "exec"), namespace)
    return {name: namespace[name] for name in FUNCTIONS}


def song_frames(rng: np.random.Generator, mixing: np.ndarray, frames: int) -> np.ndarray:
    """Correlated frames around a song-specific mean and scale, float32 as embeddings are."""
    d = len(mixing)
    frames = (rng.normal(size=(frames, d)) * rng.uniform(0.7, 1.3)) @ mixing + rng.normal(scale=0.3, size=d)
    return frames.astype(np.float32)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", type=Path, required=True, help="fadtk-1.1.0-py3-none-any.whl")
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--songs", type=int, default=40)
    parser.add_argument("--frames", type=int, nargs="+", default=[1000, 300],
                        help="frames per song; one comparison per value")
    parser.add_argument("--reference-frames", type=int, default=20_000)
    parser.add_argument("--fadtk-songs", type=int, default=40, help="songs fadtk is timed on (extrapolated)")
    parser.add_argument("--device", default=None, help="sepclean's: cpu, cuda (default: cuda when present)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads, the same for both sides")
    args = parser.parse_args(argv)
    with threadpool_limits(args.threads):
        compare(args)


def compare(args) -> None:
    fadtk = load_fadtk(args.wheel)
    stats, distance = fadtk["calc_embd_statistics"], fadtk["calc_frechet_distance"]

    rng = np.random.default_rng(args.seed)
    d = args.dim
    mixing = rng.normal(size=(d, d)) / np.sqrt(d) + np.eye(d)
    reference_frames = song_frames(rng, mixing, args.reference_frames)
    for frames in args.frames:
        songs = [song_frames(rng, mixing, frames) for _ in range(args.songs)]
        timed = songs[: args.fadtk_songs]

        started = time.perf_counter()
        mu_ref, cov_ref = stats(reference_frames)  # once, as score_individual does
        setup = time.perf_counter() - started
        started = time.perf_counter()
        theirs = [distance(mu_ref, cov_ref, *stats(song)) for song in timed]
        fadtk_seconds = setup + (time.perf_counter() - started) / len(timed) * len(songs)

        # CUDA's context and its solver library load on the first call of a process: once per run, not per song.
        FrechetReference(Gaussian.fit(reference_frames[:4 * d]), device=args.device).distances_to_frames(songs[:2])
        started = time.perf_counter()
        ours = FrechetReference(Gaussian.fit(reference_frames), device=args.device).distances_to_frames(songs)
        ours_seconds = time.perf_counter() - started

        difference = np.max(np.abs(ours[: len(timed)] - np.array(theirs)) / np.abs(np.array(theirs)))
        print(f"{args.songs} songs x {frames} frames, d={d}, reference {args.reference_frames} frames, "
              f"{args.threads} BLAS thread(s): "
              f"fadtk {fadtk_seconds:7.2f} s ({1000 * fadtk_seconds / len(songs):6.1f} ms/song"
              f"{'' if len(timed) == len(songs) else f', timed on {len(timed)}'}), "
              f"sepclean {ours_seconds:6.2f} s ({1000 * ours_seconds / len(songs):5.1f} ms/song); "
              f"speed-up {fadtk_seconds / ours_seconds:5.1f}x, largest relative difference {difference:.1e}")


if __name__ == "__main__":
    main()
