"""Figures of ``sepclean score``: FAD speed, embedding throughput, detection AUROC.

1. fad-speed: per-song FAD of ``--songs`` songs against ``--references`` reference songs at
   ``--dim`` dimensions, sepclean's eigvalsh form against the per-song ``scipy.linalg.sqrtm``
   formula (timed on ``--scipy-songs`` songs and extrapolated; values compared on those).
2. throughput: seconds of audio embedded per second, for every backend whose weights are here.
3. detection: AUROC of FAD and MLP scores (built-in backend) against ``contamination.json`` of
   freshly generated synthetic datasets, overall, per contamination kind and per target (the data
   and the tables are the pipeline's stages, in a temporary store).

    python benchmarks/bench_score.py                       # all three, about 5-10 min on 2 cores
    python benchmarks/bench_score.py --sections detection --profile bench --workers 8
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np

from sepclean.detection import report
from sepclean.embeddings import EmbeddingError, create_backend
from sepclean.embeddings.extract import embed_signals
from sepclean.fad import FrechetReference, Gaussian, GaussianAccumulator, frechet_distance_sqrtm
from sepclean.pipeline import stages
from sepclean.pipeline.artifacts import ArtifactStore
from sepclean.scorers import create
from sepclean.scores import ScoreTable
from sepclean.synth import PRESETS, PROFILES

SECTIONS = ("fad-speed", "throughput", "detection")


def song_frames(rng: np.random.Generator, mixing: np.ndarray, frames: int) -> np.ndarray:
    """Correlated frames around a song-specific mean and scale."""
    d = len(mixing)
    return (rng.normal(size=(frames, d)) * rng.uniform(0.7, 1.3)) @ mixing + rng.normal(scale=0.3, size=d)


def bench_fad_speed(args) -> None:
    rng = np.random.default_rng(args.seed)
    d = args.dim
    mixing = rng.normal(size=(d, d)) / np.sqrt(d) + np.eye(d)
    accumulator = GaussianAccumulator()
    for _ in range(args.references):
        accumulator.add(song_frames(rng, mixing, args.frames))
    reference_gaussian = accumulator.gaussian()

    started = time.perf_counter()
    reference = FrechetReference(reference_gaussian)
    setup = time.perf_counter() - started
    ours, theirs, differences = 0.0, 0.0, []
    for index in range(args.songs):
        song = Gaussian.fit(song_frames(rng, mixing, args.frames))
        started = time.perf_counter()
        value = reference.distance(song)
        ours += time.perf_counter() - started
        if index < args.scipy_songs:
            started = time.perf_counter()
            expected = frechet_distance_sqrtm(reference_gaussian, song)
            theirs += time.perf_counter() - started
            differences.append(abs(value - expected) / abs(expected))
    per_song_ours = ours / args.songs
    per_song_theirs = theirs / max(1, min(args.scipy_songs, args.songs))
    print(f"\n== per-song FAD: {args.songs} songs x {args.frames} frames vs {args.references} references, d={d}")
    print(f"ours (sqrt(C_ref) once + eigvalsh per song): {setup + ours:7.2f} s  ({1000 * per_song_ours:6.1f} ms/song, "
          f"sqrt(C_ref) {setup:.2f} s)")  # fmt: skip
    print(f"scipy sqrtm per song:                        {per_song_theirs * args.songs:7.2f} s  "
          f"({1000 * per_song_theirs:6.1f} ms/song, timed on {len(differences)} songs)")  # fmt: skip
    print(f"speedup: {per_song_theirs * args.songs / (setup + ours):.1f}x; "
          f"largest relative difference: {max(differences):.1e}")  # fmt: skip


def save_random_models(folder: Path) -> dict[str, str]:
    """Models of the real sizes with random weights: MERT-v1-95M's architecture (HuBERT base),
    LAION-CLAP HTSAT-base as a transformers folder and as a laion-clap checkpoint. Throughput
    does not depend on the weights."""
    import json

    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, HubertConfig, HubertModel
    from transformers import Wav2Vec2FeatureExtractor

    from sepclean.embeddings.clap_laion import TEXT_TOWER, import_laion_clap

    HubertModel(HubertConfig()).save_pretrained(folder / "mert")
    Wav2Vec2FeatureExtractor(sampling_rate=24000, do_normalize=True).save_pretrained(folder / "mert")
    audio = dict(patch_embeds_hidden_size=128, depths=[2, 2, 12, 2], hidden_size=1024)
    text = dict(hidden_size=64, num_hidden_layers=1, num_attention_heads=1, intermediate_size=64)
    ClapModel(ClapConfig(text_config=text, audio_config=audio)).save_pretrained(folder / "clap")
    ClapFeatureExtractor().save_pretrained(folder / "clap")
    laion_clap = import_laion_clap()
    from laion_clap.clap_module.model import CLAP

    config = json.loads((Path(laion_clap.__file__).parent / "clap_module/model_configs/HTSAT-base.json").read_text())
    model = CLAP(embed_dim=config["embed_dim"], audio_cfg=config["audio_cfg"], text_cfg=TEXT_TOWER)
    torch.save({"state_dict": model.state_dict()}, folder / "clap-base.pt")
    return {"mert": str(folder / "mert"), "clap": str(folder / "clap"), "clap-laion": str(folder / "clap-base.pt")}


def bench_throughput(args) -> None:
    print("\n== embedding throughput (seconds of audio per second; resampling and I/O excluded)")
    with tempfile.TemporaryDirectory() as tmp:
        weights = {"clap": args.clap_weights, "mert": args.mert_weights}
        if args.random_weights:
            weights = save_random_models(Path(tmp))
        for name, path in {"spectral": None, **weights}.items():
            try:
                backend = create_backend(name.removesuffix("-laion"), weights=path, device=args.device)
            except EmbeddingError as e:
                print(f"{name:10s} skipped: {e}")
                continue
            _time_backend(name, backend, args)


def _time_backend(name, backend, args) -> None:
    rng = np.random.default_rng(0)
    signal = (0.1 * rng.normal(size=int(args.seconds * backend.sample_rate))).astype(np.float32)
    list(embed_signals(backend, [("warm-up", signal[: backend.framing.chunk])], args.batch_size))
    started = time.perf_counter()
    [(_, embedding)] = embed_signals(backend, [("song", signal)], args.batch_size)
    elapsed = time.perf_counter() - started
    print(f"{name:10s} {args.seconds / elapsed:8.1f} s/s  ({len(embedding.frames)} frames of {backend.dim}-d for "
          f"{args.seconds:.0f} s on {backend.device}, batch {args.batch_size})")  # fmt: skip


def bench_detection(args) -> None:
    sizes = {"train": args.songs_per_preset} if args.songs_per_preset else {}
    profile = dataclasses.replace(PROFILES[args.profile], **sizes)
    print(f"\n== detection AUROC, spectral embedding, profile {profile.name}: {profile.train} train songs, "
          f"{profile.reference} references, {profile.duration:.0f} s")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        store = ArtifactStore(Path(tmp) / "artifacts")
        cache = str(Path(tmp) / "cache")
        scorers = {
            "FAD (mean of stems)": create("fad", unified="mean", cache=cache),
            "FAD (mixture)": create("fad", unified="mixture", cache=cache),
            "FAD (all frames)": create("fad", frames="all", cache=cache),
            "MLP": create("mlp", seed=args.seed, cache=cache),
        }
        for preset in args.presets:
            started = time.perf_counter()
            data = stages.synthetic_data(store, preset, args.profile, seed=args.seed, sizes=sizes,
                                         workers=args.workers, progress=False)
            print(f"{preset} (generated and scanned in {time.perf_counter() - started:.0f} s)")
            for name, scorer in scorers.items():
                started = time.perf_counter()
                table = ScoreTable.read(stages.score(store, scorer, data, progress=False))
                result = report(table, data.contamination)
                kinds = " ".join(f"{k} {v:.2f}" for k, v in result["kind"].items())
                targets = " ".join(f"{k} {v:.2f}" for k, v in result["target"].items())
                print(f"  {name:20s} overall {result['overall']:.2f} | {kinds} | per target: {targets} "
                      f"({time.perf_counter() - started:.0f} s)")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--seed", type=int, default=0)
    speed = parser.add_argument_group("fad-speed")
    speed.add_argument("--songs", type=int, default=200)
    speed.add_argument("--references", type=int, default=50)
    speed.add_argument("--frames", type=int, default=1000, help="frames per song")
    speed.add_argument("--dim", type=int, default=768)
    speed.add_argument("--scipy-songs", type=int, default=20, help="songs also scored with scipy's sqrtm")
    throughput = parser.add_argument_group("throughput")
    throughput.add_argument("--seconds", type=float, default=60.0, help="audio embedded per backend")
    throughput.add_argument("--batch-size", type=int, default=8)
    throughput.add_argument("--device", help="torch device (default: cuda when available)")
    throughput.add_argument("--clap-weights", help="CLAP folder, cached HF id or .pt (default: the backend's)")
    throughput.add_argument("--mert-weights", help="MERT folder or cached HF id (default: the backend's)")
    throughput.add_argument("--random-weights", action="store_true",
                            help="time CLAP and MERT at their real sizes with random weights (no download needed)")
    detection = parser.add_argument_group("detection")
    detection.add_argument("--presets", nargs="+", choices=[p for p in PRESETS if p != "clean"],
                           default=["mixed23", "effects"])  # fmt: skip
    detection.add_argument("--profile", choices=list(PROFILES), default="small")
    detection.add_argument("--songs-per-preset", type=int, help="train songs (default: the profile's)")
    detection.add_argument("--workers", type=int, default=2, help="generator processes")
    args = parser.parse_args(argv)

    for section in args.sections:
        {"fad-speed": bench_fad_speed, "throughput": bench_throughput, "detection": bench_detection}[section](args)


if __name__ == "__main__":
    main()
