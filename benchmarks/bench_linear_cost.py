"""What linear-mode attribution costs per training song, and so what a pool of 10,000 songs costs.

Linear mode spends, per unit (Open-Unmix target): the baseline's loss on every training song, one
Fisher pass over them, one gradient per reference and one gradient per training song. Everything but
the references grows with the pool; this measures that part as the difference between two runs that
differ only in the number of training songs, so the fixed part (loading the model, calibration, the
references) cancels:

    per song = (t(N2) - t(N1)) / (N2 - N1)

What sharding does with it: ``--shard i/K`` (and the pipeline's job array) splits the *references*.
In exact mode that divides the dominant cost (every reference re-scores all N songs). In linear mode
every shard still takes the loss, the Fisher term and the gradient of every training song, so K
shards cost K times the work and finish no sooner than one. The estimate is printed both ways: as
shards behave today, and as a split of the songs across K jobs would (not implemented: it needs the
Fisher term computed once and shared, then each job taking a slice of the songs).

    python benchmarks/bench_linear_cost.py                       # Open-Unmix full size, 12 s songs, CPU
    python benchmarks/bench_linear_cost.py --hidden-size 16 --songs 8 16 --duration 4   # a quick look
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from sepclean.attribution.run import Run, Settings
from sepclean.scan import scan
from sepclean.synth import generate_dataset
from sepclean.synth.dataset import PROFILES
from sepclean_plugins.openunmix.train import main as train_umx


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, nargs=2, default=[10, 30], metavar=("N1", "N2"))
    parser.add_argument("--references", type=int, default=4)
    parser.add_argument("--duration", type=float, default=12.0, help="seconds per song")
    parser.add_argument("--hidden-size", type=int, default=512, help="Open-Unmix's (512: the paper's model)")
    parser.add_argument("--target", default="vocals")
    parser.add_argument("--pool", type=int, default=10_000)
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_linear_"))
    n1, n2 = sorted(args.songs)
    profile = dataclasses.replace(PROFILES["tiny"], train=n2, reference=args.references, duration=args.duration)
    data = work / "data"
    if not (data / "train").is_dir():
        generate_dataset(data, preset="mixed23", profile=profile, seed=0, progress=False)
    manifests = {}
    for split in ("train", "valid", "reference"):
        manifest, problems = scan([data / split], progress=False)
        assert not problems, problems
        manifests[split] = manifest
        manifest.write(work / f"{split}.jsonl")
    model = work / "umx"
    if not (model / f"{args.target}.json").is_file():
        train_umx(["--manifest", str(work / "train.jsonl"), "--valid-manifest", str(work / "valid.jsonl"),
                   "--target", args.target, "--epochs", "1", "--epoch-updates", "2",
                   "--hidden-size", str(args.hidden_size), "--output", str(model), "--quiet"])

    seconds = {}
    for n in (n1, n2):
        train = manifests["train"].subset(manifests["train"].ids[:n])
        run = Run("openunmix", model, train, manifests["reference"], work / f"linear_{n}", [args.target],
                  Settings(mode="linear"), args.device, progress=False)
        start = time.perf_counter()
        run.compute()
        seconds[n] = time.perf_counter() - start
        print(f"linear mode, {n} songs x {args.references} references, one target: {seconds[n]:.1f} s")
    per_song = (seconds[n2] - seconds[n1]) / (n2 - n1)
    fixed = seconds[n1] - n1 * per_song
    print(f"\nper training song and target: {per_song:.3f} s ({args.duration:g} s songs, hidden size "
          f"{args.hidden_size}, {args.device}); fixed part of a run: {fixed:.1f} s")
    print(f"{args.pool} songs x 4 targets, linear mode, {args.references} references, {args.device}:")
    today = 4 * (args.pool * per_song + fixed)
    for k in args.shards:
        print(f"  {k:>4} shards: {today / 3600:8.2f} h per shard as sharding works today (references split); "
              f"{4 * (args.pool * per_song / k + fixed) / 3600:8.2f} h per job were the songs split")

if __name__ == "__main__":
    main()
