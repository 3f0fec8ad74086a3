"""Train one Open-Unmix target model: the procedure of upstream's scripts/train.py (which the
openunmix wheel does not ship), with sepclean's dataset options.

Upstream's datasets, from a dataset root (``--dataset`` and its options, see openunmix.data)::

    python -m sepclean_plugins.openunmix.train --root /data/musdb18hq --is-wav --target vocals --output runs/umx

A sepclean dataset manifest (Open-Unmix's ``trackfolder_fix`` dataset over its tracks)::

    python -m sepclean_plugins.openunmix.train --manifest train.jsonl --valid-manifest valid.jsonl \\
        --target vocals --output runs/umx [--clean-manifest clean.json] [--preset tiny]

Each option is a setting of :class:`~sepclean_plugins.openunmix.config.TrainingConfig`, where its
default and meaning are declared; ``Training.from_config`` trains from one without a command line.

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
from dataclasses import dataclass
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
from sepclean_plugins.openunmix import audio_compat, checkpoint, clean
from sepclean_plugins.openunmix.config import MANIFEST_DATASET, SETTING_DEFAULTS, TrainingConfig, add_options
from sepclean_plugins.openunmix.dataset import for_target
from sepclean_plugins.openunmix.spectrogram import StftConfig, attach, magnitude_errors, make_encoder

MODEL_ARGS = ("nfft", "nhop", "hidden_size", "nb_channels", "unidirectional", "bandwidth")
"""Settings that shape the model: resuming or fine-tuning a run must keep the run's."""

VOLATILE_ARGS = ("epochs", "output", "checkpoint", "quiet", "nb_workers", "no_cuda", "audio_backend", "save_every")
"""Settings that do not change what an epoch computes: a run may be resumed with other values."""


class _Parser(argparse.ArgumentParser):
    """Parses ``argv`` when called without arguments: ``openunmix.data.load_datasets`` adds its
    dataset options and ends with a bare ``parser.parse_args()``, which would read ``sys.argv``."""

    def __init__(self, argv: list[str], **kwargs):
        super().__init__(**kwargs)
        self.argv = argv

    def parse_known_args(self, args=None, namespace=None):
        return super().parse_known_args(self.argv if args is None else args, namespace)


def build_parser(argv: list[str], defaults: TrainingConfig = TrainingConfig(), leave_out=()) -> _Parser:
    """The command line: one option per setting of :class:`TrainingConfig`, defaulting to ``defaults``'."""
    parser = _Parser(argv, prog="python -m sepclean_plugins.openunmix.train", description="Open-Unmix trainer")
    add_options(parser, defaults, leave_out)
    return parser


@dataclass(frozen=True)
class Manifests:
    """The sepclean manifests a training reads, loaded once (the adapter's targets share them)."""

    train: Manifest
    valid: Manifest
    clean: CleanManifest | None

    @classmethod
    def load(cls, config: TrainingConfig) -> Manifests:
        clean_manifest = CleanManifest.load(config.clean_manifest) if config.clean_manifest else None
        return cls(Manifest.load(config.manifest), Manifest.load(config.valid_manifest), clean_manifest)


def manifest_datasets(config: TrainingConfig, manifests: Manifests):
    """``(train dataset, valid dataset, clean manifest Selection or None)`` of the manifests."""
    train = for_target(
        manifests.train,
        config.target,
        clean=manifests.clean,
        segment=config.seq_dur if config.seq_dur > 0 else None,
        allow_other_dataset=config.allow_other_dataset,
        augmentations=config.source_augmentations,
        random_track_mix=config.random_track_mix,
        seed=config.seed,
    )
    valid = for_target(manifests.valid, config.target, deterministic=True)
    if valid.sample_rate != train.sample_rate:
        raise ToolkitError(
            f"--valid-manifest {config.valid_manifest} is at {valid.sample_rate:g} Hz, --manifest {config.manifest} "
            f"at {train.sample_rate:g} Hz: the model is validated on what it is trained on; resample one of them"
        )
    selection = None
    if manifests.clean is not None:
        kept = clean.track_ids(train)
        selection = clean.Selection(
            config.target,
            kept=kept,
            removed=[i for i in manifests.train.ids if i not in set(kept) | set(train.too_short)],
            unused=train.too_short,
            note=_action_note(manifests.clean, config.target, kept),
        )
    elif train.too_short:
        print(f"left out {len(train.too_short)} track(s) not longer than --seq-dur: "
              f"{clean.listing(train.too_short)}")
    return train, valid, selection


def upstream_datasets(argv: list[str], defaults: TrainingConfig):
    """``(config, train dataset, valid dataset, Selection or None)`` of upstream's dataset options
    (``--root``, ``--dataset`` and the options ``openunmix.data.load_datasets`` adds for it)."""
    parser = build_parser(argv, defaults, leave_out=MANIFEST_DATASET)  # upstream's dataset declares its own
    args, _ = parser.parse_known_args()
    own = vars(args).copy()
    TrainingConfig(**own)  # impossible settings are refused before any data is read
    audio_compat.install()
    train, valid, args = openunmix.data.load_datasets(parser, args)
    read = vars(args)
    config = TrainingConfig(**{k: read[k] for k in own}, dataset_options={k: v for k, v in read.items() if k not in own})
    if not len(valid):
        raise ToolkitError(
            f"the {config.dataset} dataset under {config.root} has no validation tracks: early stopping would watch "
            "a validation loss of 0. (--dataset musdb validates on MUSDB18's own validation songs, by name.) "
            "Give the dataset a validation split, or train on sepclean manifests (--manifest, --valid-manifest)"
        )
    selection = None
    if config.clean_manifest:
        selection = clean.apply(CleanManifest.load(config.clean_manifest), config.target, train, valid)
    return config, train, valid, selection


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


def robust_loss(config: TrainingConfig) -> RobustLoss | None:
    """The robust training the settings ask for (None: plain training)."""
    robust = RobustLoss.of({"truncate": config.loss_truncation, "mask": config.loss_masking,
                            "warmup": config.robust_warmup, "relative": config.robust_relative})
    if robust is not None:
        robust.check_batch(config.batch_size)
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

    def __init__(self, config: TrainingConfig, train_dataset, valid_dataset, selection: clean.Selection | None):
        self.config = config
        self.train_dataset = train_dataset
        self.valid_dataset = valid_dataset
        self.selection = selection

    @classmethod
    def from_config(cls, config: TrainingConfig, manifests: Manifests | None = None) -> Training:
        """The training on sepclean manifests that ``config`` describes (``manifests``: already loaded)."""
        if config.manifest is None:
            raise ToolkitError("a training config reads sepclean manifests (manifest, valid_manifest); upstream's "
                               "datasets (--root) are read by the command line")
        train, valid, selection = manifest_datasets(config, manifests or Manifests.load(config))
        return cls(config, train, valid, selection)

    @classmethod
    def from_argv(cls, argv: list[str] | None = None) -> Training:
        """The training the command line ``argv`` asks for (``sys.argv``'s when None)."""
        argv = list(sys.argv[1:] if argv is None else argv)
        given, _ = build_parser(argv).parse_known_args()
        defaults = TrainingConfig.of(given.preset)
        if given.manifest:
            return cls.from_config(TrainingConfig(**vars(build_parser(argv, defaults).parse_args())))
        return cls(*upstream_datasets(argv, defaults))

    @property
    def output(self) -> Path:
        return Path(self.config.output)

    def run(self) -> dict:
        """Train; returns what ``<target>.json`` holds."""
        config = self.config
        target = config.target
        use_cuda = not config.no_cuda and torch.cuda.is_available()
        device = torch.device("cuda" if use_cuda else "cpu")
        print("Using GPU:", use_cuda)
        if self.selection is not None:
            print(self.selection.describe(config.clean_manifest))
        else:
            print(f"training {target} on {len(clean.track_ids(self.train_dataset))} tracks")

        robust = robust_loss(config)
        if robust is not None:
            print(f"robust training: {robust.label()}")
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        np.random.seed(config.seed)
        train_loader, valid_loader = self._loaders(pin_memory=use_cuda)

        stft = StftConfig(config.nfft, config.nhop, float(self.train_dataset.sample_rate), config.nb_channels)
        encoder = make_encoder(stft).to(device)
        checkpoint.write_json(self.output / checkpoint.SEPARATOR, stft.to_json())

        source = self._resume_from()
        resumed = self._resumed_history(source) if source else None
        unmix = self._model(stft, encoder, device, scaled=not (source or config.model or config.debug))
        optimizer = torch.optim.Adam(unmix.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=config.lr_decay_gamma, patience=config.lr_decay_patience, cooldown=10
        )
        stopping = utils.EarlyStopping(patience=config.patience)

        history = {"train_loss_history": [], "valid_loss_history": [], "train_time_history": [],
                   "best_epoch": 0, "epochs_trained": 0}
        record = {}
        if resumed is not None:
            resumed = self._restore(source, unmix, optimizer, scheduler, device) or resumed
            record = resumed
            history = {k: resumed[k] for k in history}
            stopping.best, stopping.num_bad_epochs = resumed["best_loss"], resumed["num_bad_epochs"]
            if resumed.get("stopped_early") or history["epochs_trained"] >= config.epochs:
                print(f"{source} has finished: {history['epochs_trained']} epochs trained "
                      f"(--epochs {config.epochs} is the total{', stopped early' if resumed.get('stopped_early') else ''})")
                return record
            print(f"resuming {source} after epoch {history['epochs_trained']}")

        drawn = bars(not config.quiet)  # not into a log file: one line an epoch there instead
        epochs = tqdm.trange(history["epochs_trained"] + 1, config.epochs + 1, disable=not drawn)
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
            if not drawn and not config.quiet:
                print(f"epoch {epoch}/{config.epochs}: train loss {train_loss:.6g}, valid loss {valid_loss:.6g}"
                      + (" (best)" if is_best else ""), flush=True)
            if stop:
                print("Apply Early Stopping")
                break
        print(summary(target, history, stopping.best, stop, checkpoint.weights_path(self.output, target)), flush=True)
        return record

    def _loaders(self, pin_memory: bool):
        config = self.config
        options = dict(num_workers=config.nb_workers, pin_memory=pin_memory,
                       worker_init_fn=_install_audio_compat if config.nb_workers else None)
        DataLoader = torch.utils.data.DataLoader
        if config.epoch_updates:
            # Without replacement: every track is drawn once before any is drawn again.
            sampler = torch.utils.data.RandomSampler(self.train_dataset, num_samples=config.epoch_updates * config.batch_size)
            train = DataLoader(self.train_dataset, batch_size=config.batch_size, sampler=sampler, **options)
        else:
            train = DataLoader(self.train_dataset, batch_size=config.batch_size, shuffle=True, **options)
        return train, DataLoader(self.valid_dataset, batch_size=1, **options)

    def _model(self, stft: StftConfig, encoder, device, scaled: bool) -> torch.nn.Module:
        config = self.config
        if config.model:
            print(f"Fine-tuning model from {config.model}")
            if Path(config.model).expanduser().exists():
                self._check_model_args(checkpoint.locate(config.model, config.target)[0], "fine-tune")
                return checkpoint.load_model(config.model, config.target, device).train()
            unmix = utils.load_target_models(config.target, model_str_or_path=config.model, device=device)[config.target]
            return attach(unmix, stft)
        quiet = not bars(not config.quiet)
        mean, scale = input_statistics(encoder, self.train_dataset, device, quiet) if scaled else (None, None)
        max_bin = utils.bandwidth_to_max_bin(stft.sample_rate, config.nfft, config.bandwidth)
        return attach(checkpoint.build_model(config.recorded(), max_bin, mean, scale).to(device), stft)

    def _run_record(self, folder: Path) -> dict:
        """What the run's ``<target>.json`` holds; for a run killed after its first training state was
        saved and before that file was written, the same record, saved inside the state."""
        history, state = checkpoint.history_path(folder, self.config.target), checkpoint.state_path(folder, self.config.target)
        if not history.is_file() and state.is_file():
            record = checkpoint.load(state, "cpu").get("record")
            if record:
                return record
        return checkpoint.read_json(history)

    def _check_model_args(self, folder, purpose: str) -> dict:
        """The run's ``<target>.json``, once sure its model has the shape this run's options give."""
        config = self.config
        history = self._run_record(Path(folder))
        before = history.get("args", {})
        changed = {k: (before.get(k), getattr(config, k)) for k in MODEL_ARGS if before.get(k) != getattr(config, k)}
        if changed:
            listed = ", ".join(f"--{k.replace('_', '-')} {old} (now {new})" for k, (old, new) in changed.items())
            raise ToolkitError(f"cannot {purpose} {folder}: it was trained with {listed}")
        return history

    def _resume_from(self) -> Path | None:
        """``--checkpoint``, else ``--output`` when it holds this target's training state: one
        command starts a run and, run again after an interruption, resumes it."""
        if self.config.checkpoint:
            return Path(self.config.checkpoint)
        if checkpoint.state_path(self.output, self.config.target).is_file():
            self._check_same_run(self.output)
            return self.output
        return None

    def _check_same_run(self, folder: Path) -> None:
        """Refuse to continue, in ``folder``, a run started with other settings (never overwrite it)."""
        before = self._run_record(folder).get("args", {})
        now = self.config.recorded()
        # A setting added since the run began is not in its record; its default is the behaviour the
        # run had (a run begun before --robust-relative existed resumes, unless it is asked for now).
        before = {**{k: v for k, v in SETTING_DEFAULTS.items() if k in now}, **before}
        changed = {k: (before.get(k), v) for k, v in now.items() if k not in VOLATILE_ARGS and before.get(k) != v}
        if changed:
            listed = ", ".join(f"--{k.replace('_', '-')} {old} (now {new})" for k, (old, new) in sorted(changed.items()))
            raise ToolkitError(f"{folder} holds a {self.config.target} run with other settings: {listed}; "
                               "use another --output, or the run's own settings to resume it")

    def _resumed_history(self, source: Path) -> dict:
        history = self._check_model_args(source, "resume")
        seen = history.get("sepclean", {}).get("train_tracks")
        if seen is not None and seen != clean.track_ids(self.train_dataset):
            print(f"warning: resuming {source}, which was trained on other tracks than this run's")
        return history

    def _restore(self, source: Path, unmix, optimizer, scheduler, device) -> dict | None:
        """Load the training state; returns the record saved with it (None for older runs)."""
        path = checkpoint.state_path(source, self.config.target)
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
        target = self.config.target
        record = {
            **history,
            "args": self.config.recorded(),
            "best_loss": stopping.best,
            "num_bad_epochs": stopping.num_bad_epochs,
            "stopped_early": stopped_early,
            "commit": f"openunmix {version('openunmix')}",
            "sepclean": {
                "version": sepclean.__version__,
                "train_tracks": clean.track_ids(self.train_dataset),
                "valid_tracks": clean.track_ids(self.valid_dataset),
                "clean_manifest": self.config.clean_manifest,
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
        if self.config.save_every and epoch % self.config.save_every == 0:
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
