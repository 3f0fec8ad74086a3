"""Train one Open-Unmix target model: the procedure of upstream's scripts/train.py (which the
openunmix wheel does not ship), with sepclean's dataset options.

Upstream's datasets, from a dataset root (``--dataset`` and its options, see openunmix.data)::

    python -m sepclean_plugins.openunmix.train --root /data/musdb18hq --is-wav --target vocals --output runs/umx

A sepclean dataset manifest (Open-Unmix's ``trackfolder_fix`` dataset over its tracks)::

    python -m sepclean_plugins.openunmix.train --manifest train.jsonl --valid-manifest valid.jsonl \\
        --target vocals --output runs/umx [--clean-manifest clean.json] [--preset tiny]

Same procedure as upstream: magnitude-spectrogram MSE, Adam, ReduceLROnPlateau, early stopping on
the validation loss, input scaling from dataset statistics, one target per run, and the same files
(``<target>.pth``, ``<target>.chkpnt``, ``<target>.json``, ``separator.json``), so
``openunmix.utils.load_separator`` (what ``umx --model DIR`` uses) loads the result. Deliberate differences: ``--epochs``
is the total number of epochs, and the same command run again on the same ``--output`` resumes an
interrupted run after its last finished epoch (settings that change what an epoch computes must be
the run's own, or the run is refused, never overwritten; ``--checkpoint DIR`` resumes another
folder's run into ``--output``; upstream trains ``--epochs`` more). The random generators are saved
with each epoch, so a resumed run ends with the same weights as an uninterrupted one when the data
is read in this process (``--nb-workers 0``, and on the CPU; CUDA kernels are not bitwise
deterministic). ``--epoch-updates`` fixes the updates of an epoch, for fair comparisons between
kept sets of different sizes. ``--nb-workers`` is honoured on CPU too; the epoch loss is the mean
over examples; the files are replaced atomically, so an interruption never corrupts them.
"""

from __future__ import annotations

import argparse
import copy
import random
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import openunmix.data
import torch
import tqdm
from openunmix import utils

import sepclean
from sepclean.clean_manifest import CleanManifest
from sepclean.errors import SepcleanError
from sepclean.manifest import Manifest
from sepclean.progress import bars
from sepclean.robust import RobustLoss
from sepclean.toolkit import ToolkitError
from sepclean_plugins.openunmix import audio_compat, checkpoint, clean, presets
from sepclean_plugins.openunmix.adapter import OpenUnmixToolkit
from sepclean_plugins.openunmix.spectrogram import StftConfig, attach, magnitude_errors, make_encoder

MODEL_ARGS = ("nfft", "nhop", "hidden_size", "nb_channels", "unidirectional", "bandwidth")
"""Arguments that shape the model: resuming or fine-tuning a run must keep the run's."""

VOLATILE_ARGS = ("epochs", "output", "checkpoint", "quiet", "nb_workers", "no_cuda", "audio_backend", "save_every")
"""Arguments that do not change what an epoch computes: a run may be resumed with other values."""


class _Parser(argparse.ArgumentParser):
    """Parses ``argv`` when called without arguments: ``openunmix.data.load_datasets`` adds its
    dataset options and ends with a bare ``parser.parse_args()``, which would read ``sys.argv``."""

    def __init__(self, argv: list[str], **kwargs):
        super().__init__(**kwargs)
        self.argv = argv

    def parse_known_args(self, args=None, namespace=None):
        return super().parse_known_args(self.argv if args is None else args, namespace)


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = _Parser(argv, prog="python -m sepclean_plugins.openunmix.train", description="Open-Unmix trainer")
    parser.add_argument("--target", type=str, default="vocals", help="target source (will be passed to the dataset)")

    data = parser.add_argument_group("dataset: upstream's (--root) or a sepclean manifest (--manifest)")
    data.add_argument("--dataset", type=str,
                      choices=["musdb", "aligned", "sourcefolder", "trackfolder_var", "trackfolder_fix"],
                      help="upstream dataset class, with --root (default: musdb)")
    data.add_argument("--root", type=str, help="root path of dataset")
    data.add_argument("--manifest", type=str, help="train on the tracks of this sepclean dataset manifest")
    data.add_argument("--valid-manifest", type=str, help="validation tracks, with --manifest")
    data.add_argument("--clean-manifest", type=str,
                      help="train only on the tracks this sepclean clean manifest keeps (for --target)")
    data.add_argument("--allow-other-dataset", action="store_true",
                      help="apply a clean manifest made for another dataset manifest")

    parser.add_argument("--output", type=str, default="open-unmix", help="provide output path base folder name")
    parser.add_argument("--model", type=str, help="Name or path of pretrained model to fine-tune")
    parser.add_argument("--checkpoint", type=str, help="run folder to resume training from (<target>.chkpnt)")
    parser.add_argument("--audio-backend", type=str, default="soundfile",
                        help="ignored: audio is read with soundfile (torchaudio >= 2.9 has no backends)")
    parser.add_argument("--preset", type=str, choices=sorted(presets.PRESETS),
                        help="small-machine defaults (options given explicitly still win)")

    training = parser.add_argument_group("training")
    training.add_argument("--epochs", type=int, default=1000, help="total number of epochs")
    training.add_argument("--epoch-updates", type=int,
                          help="optimizer updates per epoch, drawn evenly from the tracks whatever their number, "
                          "so that runs on different kept sets train equally long (default: one pass over the "
                          "tracks, as upstream)")
    training.add_argument("--save-every", type=int, metavar="K",
                          help="also keep every K-th epoch's weights as a run folder OUTPUT/epochs/e<epoch:04d> "
                          "(checkpoints along training, for attribution averaged over them)")
    training.add_argument("--batch-size", type=int, default=16)
    training.add_argument("--lr", type=float, default=0.001, help="learning rate, defaults to 1e-3")
    training.add_argument("--patience", type=int, default=140, help="early stopping patience in epochs")
    training.add_argument("--lr-decay-patience", type=int, default=80, help="lr decay patience for plateau scheduler")
    training.add_argument("--lr-decay-gamma", type=float, default=0.3, help="gamma of learning rate scheduler decay")
    training.add_argument("--weight-decay", type=float, default=0.00001, help="weight decay")
    training.add_argument("--seed", type=int, default=42, metavar="S", help="random seed (default: 42)")
    training.add_argument("--loss-truncation", type=float, metavar="FRACTION",
                          help="robust training: in each batch, this fraction of the examples with the highest "
                          "loss gets no gradient (loss truncation, as CCOM trained on MDX23's label noise)")
    training.add_argument("--loss-masking", type=float, metavar="FRACTION",
                          help="robust training: in each batch, this fraction of the (example, STFT frame) cells "
                          "with the highest loss gets no gradient (loss masking, as KUIELab trained on MDX23's "
                          "bleeding)")
    training.add_argument("--robust-warmup", type=int, metavar="EPOCHS",
                          help="epochs of plain training before truncation and masking start (default: 0)")
    training.add_argument("--robust-relative", action="store_true",
                          help="truncation and masking rank the loss relative to the target's energy (an "
                          "error-to-signal ratio), so the loudest examples are not dropped for being loud")

    model = parser.add_argument_group("model")
    model.add_argument("--seq-dur", type=float, default=6.0,
                       help="Sequence duration in seconds; <= 0 uses whole tracks (with --manifest)")
    model.add_argument("--unidirectional", action="store_true", default=False, help="Use unidirectional LSTM")
    model.add_argument("--nfft", type=int, default=4096, help="STFT fft size and window size")
    model.add_argument("--nhop", type=int, default=1024, help="STFT hop size")
    model.add_argument("--hidden-size", type=int, default=512, help="hidden size parameter of bottleneck layers")
    model.add_argument("--bandwidth", type=int, default=16000, help="maximum model bandwidth in herz")
    model.add_argument("--nb-channels", type=int, default=2, help="set number of channels for model (1, 2)")
    model.add_argument("--nb-workers", type=int, default=0, help="Number of workers for dataloader.")
    model.add_argument("--debug", action="store_true", default=False,
                       help="Speed up training init for dev purposes (skips the dataset statistics)")

    parser.add_argument("--quiet", action="store_true", default=False, help="less verbose during training")
    parser.add_argument("--no-cuda", action="store_true", default=False, help="disables CUDA training")
    return parser


AT_LEAST_ONE = ("epochs", "epoch_updates", "save_every", "batch_size", "patience", "hidden_size", "nfft", "nhop")
"""Options that are counts of at least one (None: not given, where that is allowed)."""


def check_counts(args: argparse.Namespace) -> None:
    """Refuse a count below one before any data is read (``--epochs 0`` would train nothing)."""
    for name in AT_LEAST_ONE:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ToolkitError(f"--{name.replace('_', '-')} must be at least 1; got {value}")


def parse_and_load_datasets(argv: list[str]):
    """``(args, train dataset, valid dataset, clean manifest Selection or None)``."""
    parser = build_parser(argv)
    args, _ = parser.parse_known_args()
    presets.apply(parser, args.preset)
    args, _ = parser.parse_known_args()
    check_counts(args)
    audio_compat.install()
    if args.manifest:
        return manifest_datasets(parser, args)
    if args.valid_manifest or args.allow_other_dataset:
        parser.error("--valid-manifest and --allow-other-dataset go with --manifest")
    train, valid, args = openunmix.data.load_datasets(parser, args)
    if not len(valid):
        raise ToolkitError(
            f"the {args.dataset} dataset under {args.root} has no validation tracks: early stopping would watch "
            "a validation loss of 0. (--dataset musdb validates on MUSDB18's own validation songs, by name.) "
            "Give the dataset a validation split, or train on sepclean manifests (--manifest, --valid-manifest)"
        )
    selection = None
    if args.clean_manifest:
        selection = clean.apply(CleanManifest.load(args.clean_manifest), args.target, train, valid)
    return args, train, valid, selection


def manifest_datasets(parser: argparse.ArgumentParser, args: argparse.Namespace):
    # The options of upstream's trackfolder_fix dataset, which the manifest's dataset is.
    parser.add_argument("--source-augmentations", type=str, nargs="+", help="e.g. gain channelswap")
    parser.add_argument("--random-track-mix", action="store_true", default=False,
                        help="Apply random track mixing augmentation")
    args = parser.parse_args()
    if args.root:
        parser.error("--manifest and --root are alternatives")
    if not args.valid_manifest:
        parser.error("--manifest needs --valid-manifest (the tracks early stopping is measured on)")

    toolkit = OpenUnmixToolkit()
    manifest = Manifest.load(args.manifest)
    clean_manifest = CleanManifest.load(args.clean_manifest) if args.clean_manifest else None
    train = toolkit.dataset(
        manifest,
        args.target,
        clean=clean_manifest,
        segment=args.seq_dur if args.seq_dur > 0 else None,
        allow_other_dataset=args.allow_other_dataset,
        augmentations=args.source_augmentations,
        random_track_mix=args.random_track_mix,
        seed=args.seed,
    )
    valid = toolkit.dataset(Manifest.load(args.valid_manifest), args.target, deterministic=True)
    if valid.sample_rate != train.sample_rate:
        raise ToolkitError(
            f"--valid-manifest {args.valid_manifest} is at {valid.sample_rate:g} Hz, --manifest {args.manifest} at "
            f"{train.sample_rate:g} Hz: the model is validated on what it is trained on; resample one of them"
        )
    selection = None
    if clean_manifest is not None:
        kept = toolkit.dataset_tracks(train)
        selection = clean.Selection(
            args.target,
            kept=kept,
            removed=[i for i in manifest.ids if i not in set(kept) | set(train.too_short)],
            unused=train.too_short,
            note=_action_note(clean_manifest, args.target, kept),
        )
    elif train.too_short:
        print(f"left out {len(train.too_short)} track(s) not longer than --seq-dur: "
              f"{clean.listing(train.too_short)}")
    return args, train, valid, selection


def _action_note(clean_manifest: CleanManifest, target: str, kept: list[str]) -> str:
    if clean_manifest.weights is not None:
        weights = [clean_manifest.weights[target][i] for i in kept]
        return f"loss weights from {min(weights):.2f} to {max(weights):.2f} (mean {np.mean(weights):.2f})"
    repaired = [i for i in kept if i in clean_manifest.replace]
    return f"stems of {len(repaired)} of them repaired" if repaired else ""


class RunningMoments:
    """Per-bin mean and standard deviation over streamed frames (Chan et al.'s pairwise update,
    as sklearn's StandardScaler.partial_fit, which upstream uses)."""

    def __init__(self):
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def update(self, frames: np.ndarray) -> None:
        frames = frames.astype(np.float64)
        n = frames.shape[0]
        mean = frames.mean(0)
        m2 = ((frames - mean) ** 2).sum(0)
        total = self.count + n
        delta = mean - self.mean
        self.m2 = self.m2 + m2 + delta**2 * self.count * n / total
        self.mean = self.mean + delta * n / total
        self.count = total

    @property
    def std(self) -> np.ndarray:
        std = np.sqrt(self.m2 / self.count)
        return np.where(std == 0, 1.0, std)


def input_statistics(encoder: torch.nn.Module, dataset, device, quiet: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale of the mono magnitude spectrogram frames of the training tracks, whole and
    unaugmented (scripts/train.py's get_statistics)."""
    view = copy.deepcopy(dataset)
    if not isinstance(view, openunmix.data.SourceFolderDataset):  # unaligned: excerpts stay
        view.seq_duration = None
    view.random_chunks = False
    view.samples_per_track = 1
    view.source_augmentations = openunmix.data.Compose([])
    view.random_track_mix = False
    view.random_interferer_mix = False

    moments = RunningMoments()
    with torch.no_grad():
        for index in tqdm.tqdm(range(len(view)), desc="Compute dataset statistics", disable=quiet):
            x = view[index][0]
            spectrogram = encoder(x[None].to(device)).mean(1)[0]  # (bins, frames), downmixed
            moments.update(spectrogram.T.cpu().numpy())
    std = moments.std
    return moments.mean, np.maximum(std, 1e-4 * std.max())


def robust_loss(args: argparse.Namespace) -> RobustLoss | None:
    """The robust training the options ask for (None: plain training)."""
    robust = RobustLoss.of({"truncate": args.loss_truncation, "mask": args.loss_masking, "warmup": args.robust_warmup,
                            "relative": args.robust_relative})
    if robust is not None:
        robust.check_batch(args.batch_size)
    return robust


def summary(target: str, history: dict, best_loss: float, stopped_early: bool, weights: Path) -> str:
    """The line a training ends with: epochs, best epoch and its validation loss, where the model is."""
    return (f"{target}: {history['epochs_trained']} epoch(s) trained{', stopped early' if stopped_early else ''}; "
            f"best epoch {history['best_epoch']} (valid loss {best_loss if best_loss is None else f'{best_loss:.6g}'}); "
            f"model: {weights}")


def run_epoch(unmix, encoder, loader, device, optimizer=None, quiet=True, robust: RobustLoss | None = None,
              epoch: int = 0) -> float:
    """One pass over ``loader``: a training epoch with an optimizer (robust from its ``epoch``, counted
    from 0, when asked), else a validation pass. Batches ``(x, y, weight)`` (a clean manifest's
    ``weight`` action) multiply each example's loss by its weight: the batch loss is the mean of
    weight x loss over the examples (over the robust selection's kept cells, when robust)."""
    unmix.train(optimizer is not None)
    meter = utils.AverageMeter()
    with torch.set_grad_enabled(optimizer is not None):
        for batch in tqdm.tqdm(loader, desc="Training batch", disable=quiet or optimizer is None, leave=False):
            x, y = batch[0], batch[1]
            errors = magnitude_errors(unmix, encoder, x.to(device), y.to(device))[:, None]  # one source
            if optimizer is not None and robust is not None:
                energy = encoder(y.to(device)).pow(2)[:, None] if robust.relative else None  # as the errors are
                errors = errors * robust.weights(errors, epoch, energy=energy)
            if optimizer is not None and len(batch) > 2:
                errors = errors * batch[2].to(device, errors.dtype).reshape(-1, *[1] * (errors.dim() - 1))
            loss = errors.mean()
            if optimizer is not None:
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            meter.update(loss.item(), x.size(0))
    return meter.avg


def rng_state() -> dict:
    """The generators an epoch draws from (excerpts: python's random; shuffling: torch), as plain
    values that a weights-only load accepts."""
    name, keys, position, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": [name, keys.tolist(), position, has_gauss, gauss]}


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, gauss))


def _install_audio_compat(_worker_id: int) -> None:
    # Spawned dataloader workers import openunmix afresh, without the soundfile readers.
    audio_compat.install()


class Training:
    """One target's training run; ``train_dataset`` is the very object the training reads."""

    def __init__(self, args: argparse.Namespace, train_dataset, valid_dataset, selection: clean.Selection | None):
        self.args = args
        self.train_dataset = train_dataset
        self.valid_dataset = valid_dataset
        self.selection = selection
        self.toolkit = OpenUnmixToolkit()

    @classmethod
    def from_argv(cls, argv: list[str] | None = None) -> "Training":
        args, train, valid, selection = parse_and_load_datasets(list(sys.argv[1:] if argv is None else argv))
        return cls(args, train, valid, selection)

    @property
    def output(self) -> Path:
        return Path(self.args.output)

    def run(self) -> dict:
        """Train; returns what ``<target>.json`` holds."""
        args = self.args
        target = args.target
        use_cuda = not args.no_cuda and torch.cuda.is_available()
        device = torch.device("cuda" if use_cuda else "cpu")
        print("Using GPU:", use_cuda)
        if self.selection is not None:
            print(self.selection.describe(args.clean_manifest))
        else:
            print(f"training {target} on {len(self.toolkit.dataset_tracks(self.train_dataset))} tracks")

        robust = robust_loss(args)
        if robust is not None:
            print(f"robust training: {robust.label()}")
        torch.manual_seed(args.seed)
        random.seed(args.seed)
        np.random.seed(args.seed)
        train_loader, valid_loader = self._loaders(pin_memory=use_cuda)

        stft = StftConfig(args.nfft, args.nhop, float(self.train_dataset.sample_rate), args.nb_channels)
        encoder = make_encoder(stft).to(device)
        checkpoint.write_json(self.output / checkpoint.SEPARATOR, stft.to_json())

        source = self._resume_from()
        resumed = self._resumed_history(source) if source else None
        unmix = self._model(stft, encoder, device, scaled=not (source or args.model or args.debug))
        optimizer = torch.optim.Adam(unmix.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=args.lr_decay_gamma, patience=args.lr_decay_patience, cooldown=10
        )
        stopping = utils.EarlyStopping(patience=args.patience)

        history = {"train_loss_history": [], "valid_loss_history": [], "train_time_history": [],
                   "best_epoch": 0, "epochs_trained": 0}
        record = {}
        if resumed is not None:
            resumed = self._restore(source, unmix, optimizer, scheduler, device) or resumed
            record = resumed
            history = {k: resumed[k] for k in history}
            stopping.best, stopping.num_bad_epochs = resumed["best_loss"], resumed["num_bad_epochs"]
            if resumed.get("stopped_early") or history["epochs_trained"] >= args.epochs:
                print(f"{source} has finished: {history['epochs_trained']} epochs trained "
                      f"(--epochs {args.epochs} is the total{', stopped early' if resumed.get('stopped_early') else ''})")
                return record
            print(f"resuming {source} after epoch {history['epochs_trained']}")

        drawn = bars(not args.quiet)  # not into a log file: one line an epoch there instead
        epochs = tqdm.trange(history["epochs_trained"] + 1, args.epochs + 1, disable=not drawn)
        stop = False
        for epoch in epochs:
            epochs.set_description("Training epoch")
            start = time.time()
            train_loss = run_epoch(unmix, encoder, train_loader, device, optimizer, quiet=not drawn,
                                   robust=robust, epoch=epoch - 1)
            valid_loss = run_epoch(unmix, encoder, valid_loader, device)
            scheduler.step(valid_loss)
            stop = stopping.step(valid_loss)
            is_best = valid_loss == stopping.best
            if is_best:
                history["best_epoch"] = epoch
            history["train_loss_history"].append(train_loss)
            history["valid_loss_history"].append(valid_loss)
            history["train_time_history"].append(time.time() - start)
            history["epochs_trained"] = epoch
            epochs.set_postfix(train_loss=train_loss, val_loss=valid_loss)
            record = self._save(unmix, optimizer, scheduler, stopping, history, is_best, stopped_early=stop)
            if not drawn and not args.quiet:
                print(f"epoch {epoch}/{args.epochs}: train loss {train_loss:.6g}, valid loss {valid_loss:.6g}"
                      + (" (best)" if is_best else ""), flush=True)
            if stop:
                print("Apply Early Stopping")
                break
        print(summary(target, history, stopping.best, stop, checkpoint.weights_path(self.output, target)), flush=True)
        return record

    def _loaders(self, pin_memory: bool):
        args = self.args
        options = dict(num_workers=args.nb_workers, pin_memory=pin_memory,
                       worker_init_fn=_install_audio_compat if args.nb_workers else None)
        DataLoader = torch.utils.data.DataLoader
        if args.epoch_updates:
            # Without replacement: every track is drawn once before any is drawn again.
            sampler = torch.utils.data.RandomSampler(self.train_dataset, num_samples=args.epoch_updates * args.batch_size)
            train = DataLoader(self.train_dataset, batch_size=args.batch_size, sampler=sampler, **options)
        else:
            train = DataLoader(self.train_dataset, batch_size=args.batch_size, shuffle=True, **options)
        return train, DataLoader(self.valid_dataset, batch_size=1, **options)

    def _model(self, stft: StftConfig, encoder, device, scaled: bool) -> torch.nn.Module:
        args = self.args
        if args.model:
            print(f"Fine-tuning model from {args.model}")
            if Path(args.model).expanduser().exists():
                self._check_model_args(checkpoint.locate(args.model, args.target)[0], "fine-tune")
                return checkpoint.load_model(args.model, args.target, device).train()
            unmix = utils.load_target_models(args.target, model_str_or_path=args.model, device=device)[args.target]
            return attach(unmix, stft)
        quiet = not bars(not args.quiet)
        mean, scale = input_statistics(encoder, self.train_dataset, device, quiet) if scaled else (None, None)
        max_bin = utils.bandwidth_to_max_bin(stft.sample_rate, args.nfft, args.bandwidth)
        return attach(checkpoint.build_model(vars(args), max_bin, mean, scale).to(device), stft)

    def _check_model_args(self, folder, purpose: str) -> dict:
        """The run's ``<target>.json``, once sure its model has the shape this run's options give."""
        args = self.args
        history = checkpoint.read_json(checkpoint.history_path(folder, args.target))
        before = history.get("args", {})
        changed = {k: (before.get(k), getattr(args, k)) for k in MODEL_ARGS if before.get(k) != getattr(args, k)}
        if changed:
            listed = ", ".join(f"--{k.replace('_', '-')} {old} (now {new})" for k, (old, new) in changed.items())
            raise ToolkitError(f"cannot {purpose} {folder}: it was trained with {listed}")
        return history

    def _resume_from(self) -> Path | None:
        """``--checkpoint``, else ``--output`` when it holds this target's training state: one
        command starts a run and, run again after an interruption, resumes it."""
        if self.args.checkpoint:
            return Path(self.args.checkpoint)
        if checkpoint.state_path(self.output, self.args.target).is_file():
            self._check_same_run(self.output)
            return self.output
        return None

    def _check_same_run(self, folder: Path) -> None:
        """Refuse to continue, in ``folder``, a run started with other settings (never overwrite it)."""
        before = checkpoint.read_json(checkpoint.history_path(folder, self.args.target)).get("args", {})
        now = vars(self.args)
        changed = {k: (before.get(k), v) for k, v in now.items() if k not in VOLATILE_ARGS and before.get(k) != v}
        if changed:
            listed = ", ".join(f"--{k.replace('_', '-')} {old} (now {new})" for k, (old, new) in sorted(changed.items()))
            raise ToolkitError(f"{folder} holds a {self.args.target} run with other settings: {listed}; "
                               "use another --output, or the run's own settings to resume it")

    def _resumed_history(self, source: Path) -> dict:
        history = self._check_model_args(source, "resume")
        seen = history.get("sepclean", {}).get("train_tracks")
        if seen is not None and seen != self.toolkit.dataset_tracks(self.train_dataset):
            print(f"warning: resuming {source}, which was trained on other tracks than this run's")
        return history

    def _restore(self, source: Path, unmix, optimizer, scheduler, device) -> dict | None:
        """Load the training state; returns the record saved with it (None for older runs)."""
        path = checkpoint.state_path(source, self.args.target)
        state = checkpoint.load(path, device)
        try:
            unmix.load_state_dict(state["state_dict"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise ToolkitError(f"{path}: not a checkpoint of this run's model ({type(e).__name__}: {e})") from None
        if "rng" in state:  # continue the random excerpts and shuffling where the interrupted run was
            restore_rng(state["rng"])
        return state.get("record")

    def _save(self, unmix, optimizer, scheduler, stopping, history: dict, is_best: bool, stopped_early: bool) -> dict:
        """Best weights, then the training state (which holds the record a resumed run continues),
        then ``<target>.json``: killed between any two, a resumed run redoes at most the last epoch
        and ends as an uninterrupted one."""
        target = self.args.target
        record = {
            **history,
            "args": vars(self.args),
            "best_loss": stopping.best,
            "num_bad_epochs": stopping.num_bad_epochs,
            "stopped_early": stopped_early,
            "commit": f"openunmix {version('openunmix')}",
            "sepclean": {
                "version": sepclean.__version__,
                "train_tracks": self.toolkit.dataset_tracks(self.train_dataset),
                "valid_tracks": self.toolkit.dataset_tracks(self.valid_dataset),
                "clean_manifest": self.args.clean_manifest,
                "removed_tracks": self.selection.removed if self.selection else [],
            },
        }
        if is_best:
            checkpoint.save(checkpoint.weights_path(self.output, target), unmix.state_dict())
        checkpoint.save(checkpoint.state_path(self.output, target), {
            "epoch": history["epochs_trained"] + 1,
            "state_dict": unmix.state_dict(),
            "best_loss": stopping.best,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng_state(),
            "record": record,
        })
        checkpoint.write_json(checkpoint.history_path(self.output, target), record)
        epoch = history["epochs_trained"]
        if self.args.save_every and epoch % self.args.save_every == 0:
            # A run folder of its own (history written last), so any loader takes it as it is.
            folder = checkpoint.epoch_folder(self.output, epoch)
            checkpoint.save(checkpoint.weights_path(folder, target), unmix.state_dict())
            checkpoint.write_json(folder / checkpoint.SEPARATOR, checkpoint.read_json(self.output / checkpoint.SEPARATOR))
            checkpoint.write_json(checkpoint.history_path(folder, target), record)
        return record


def main(argv: list[str] | None = None) -> int:
    try:
        Training.from_argv(argv).run()
    except SepcleanError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
