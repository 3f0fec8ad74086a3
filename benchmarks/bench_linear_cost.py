"""What linear-mode attribution costs, in training-epoch equivalents, and so what a large pool costs.

For each number of training songs N and of references M asked for, one target (Open-Unmix), it times:

* one training epoch: the same model's training pass (forward, backward, Adam step) over the same N
  songs, cut into the same deterministic excerpts and batches as attribution reads them;
* linear attribution of those N songs against M references, unsharded (the whole of its compute:
  baseline losses, the Fisher pass, the step's calibration, M reference gradients, N song gradients).

The table's runs take α as given (the α that calibration found for the smallest N and M): the step's
calibration to --strength is a bisection whose number of rounds varies from run to run, over the
first 8 references whatever M is, so it is timed on its own (the smallest run, calibrated, less the
same run with α given) and reported beside the fit.

It prints the table (seconds, and attribution over one epoch of the same N songs), then the least-
squares fit of the attribution's time, t(N, M) = fixed + N · per song + M · per reference, and what
that fit says a pool costs: the slowest job when the songs are split over K shards (the references'
side, the calibration and the fixed part are paid by one shard; each shard pays the songs' side of
N/K songs).

    python benchmarks/bench_linear_cost.py                       # Open-Unmix full size, 12 s songs, CPU
    python benchmarks/bench_linear_cost.py --hidden-size 16 --duration 4 --songs 10 30 --references 4 16
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sepclean import toolkit as toolkits
from sepclean.attribution.run import Run, Settings, load_tracks
from sepclean.pipeline import stages
from sepclean.pipeline.artifacts import ArtifactStore
from sepclean.toolkit import TrainSpec


def epoch_seconds(checkpoint: Path, manifest, target: str, settings: Settings, device: str) -> float:
    """One training epoch over ``manifest``'s songs, with the excerpts and batches attribution reads."""
    kit = toolkits.get("openunmix")
    model = kit.load(checkpoint, target, device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    tracks = load_tracks(kit, manifest, target, settings)
    start = time.perf_counter()
    for track in tracks:
        for batch in track:
            optimizer.zero_grad()
            kit.loss(target, model, batch).mean().backward()
            optimizer.step()
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, nargs="+", default=[10, 30, 100], metavar="N")
    parser.add_argument("--references", type=int, nargs="+", default=[4, 16, 50], metavar="M")
    parser.add_argument("--duration", type=float, default=12.0, help="seconds per song")
    parser.add_argument("--segment", type=float, help="excerpt seconds (default: whole songs)")
    parser.add_argument("--hidden-size", type=int, default=512, help="Open-Unmix's (512: the paper's model)")
    parser.add_argument("--target", default="vocals")
    parser.add_argument("--pool", type=int, default=10_000, help="songs of the pool to extrapolate to")
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    if len(args.songs) * len(args.references) < 3 or len(set(args.songs)) < 2 or len(set(args.references)) < 2:
        parser.error("the fit needs at least two values of --songs and two of --references")

    work = (args.workdir or Path(tempfile.mkdtemp(prefix="bench_linear_"))).resolve()
    store = ArtifactStore(work / "artifacts")
    sizes = {"train": max(args.songs), "reference": max(args.references), "duration": args.duration}
    data = stages.synthetic_data(store, "mixed23", "tiny", sizes=sizes, progress=False)
    manifests = {split: data.manifest(split) for split in ("train", "reference")}
    # The model's weights do not change the cost; two updates make a trained checkpoint.
    spec = TrainSpec(data.path("train"), data.path("valid"), targets=(args.target,), epochs=1, epoch_updates=2,
                     overrides={"seq_dur": min(6.0, args.duration / 2), "hidden_size": args.hidden_size},
                     device=args.device, quiet=True)
    model = stages.train(store, "openunmix", spec).checkpoint

    def timed(n: int, m: int, settings: Settings, name: str) -> float:
        train = manifests["train"].subset(manifests["train"].ids[:n])
        reference = manifests["reference"].subset(manifests["reference"].ids[:m])
        run = Run("openunmix", model, train, reference, work / name, [args.target], settings, args.device,
                  progress=False)
        start = time.perf_counter()
        run.compute()
        return time.perf_counter() - start

    n0, m0 = min(args.songs), min(args.references)
    calibrated = timed(n0, m0, Settings(mode="linear", segment=args.segment), f"calibrated_{n0}_{m0}")
    alpha = json.loads((work / f"calibrated_{n0}_{m0}" / "meta.json").read_text())["alpha"][args.target]
    settings = Settings(mode="linear", segment=args.segment, alpha=alpha)
    calibration = calibrated - timed(n0, m0, settings, f"alpha_{n0}_{m0}")
    print(f"Open-Unmix hidden size {args.hidden_size}, {args.duration:g} s songs, excerpts "
          f"{'whole songs' if args.segment is None else f'{args.segment:g} s'}, one target, {args.device}, "
          f"{torch.get_num_threads()} thread(s)\n")
    print(f"{'N':>5} {'M':>4} {'epoch s':>9} {'linear s':>9} {'epochs':>7}")
    rows = []
    for n in args.songs:
        train = manifests["train"].subset(manifests["train"].ids[:n])
        epoch = epoch_seconds(model, train, args.target, settings, args.device)
        for m in args.references:
            seconds = timed(n, m, settings, f"linear_{n}_{m}")
            rows.append((n, m, epoch, seconds))
            print(f"{n:>5} {m:>4} {epoch:>9.2f} {seconds:>9.2f} {seconds / epoch:>7.2f}", flush=True)

    table = np.array(rows)
    design = np.column_stack([np.ones(len(table)), table[:, 0], table[:, 1]])
    (fixed, per_song, per_reference), *_ = np.linalg.lstsq(design, table[:, 3], rcond=None)
    epoch_per_song = float(np.mean(table[:, 2] / table[:, 0]))
    print(f"\nfit: t(N, M) = {fixed:.2f} s + N x {per_song:.3f} s + M x {per_reference:.3f} s "
          f"(largest residual {np.abs(design @ [fixed, per_song, per_reference] - table[:, 3]).max():.2f} s)")
    print(f"one training epoch: {epoch_per_song:.3f} s per song; linear attribution's per-song cost is "
          f"{per_song / epoch_per_song:.2f} epoch(s) of that song, each reference "
          f"{per_reference / epoch_per_song:.2f} song-epochs")
    print(f"calibrating the step to --strength: {calibration:.2f} s more, once per run and target "
          f"(N = {n0}, M = {m0}: {calibrated:.2f} s calibrated, {calibrated - calibration:.2f} s with alpha given)")
    print(f"\n{args.pool} songs x 4 targets, {max(args.references)} references, {args.device}, from the fit:")
    for k in args.shards:
        per_job = 4 * (fixed + calibration + max(args.references) * per_reference + args.pool * per_song / k)
        print(f"  {k:>4} shard(s) splitting the songs: {per_job / 3600:8.2f} h per job")


if __name__ == "__main__":
    main()
