"""Demucs training on sepclean datasets: the dora main of ``dora -P sepclean_plugins.demucs``.

demucs' own training (``demucs.train``'s builders, ``demucs.solver.Solver``) with this package's
hydra config (``conf/``), since the demucs wheel ships none. The training tracks come from a folder
(``dset.wav``) or a sepclean manifest (``dset.manifest``), and ``dset.clean_manifest`` keeps only
the tracks it names (with ``dset.per_stem``, each source's own list), reads its repaired stems and
weights the loss per (example, source) by its weights (``CleanManifest.apply``,
``data.WeightedSet``). XPs live in ``dora.dir`` (``./outputs``, or ``$SEPCLEAN_DEMUCS_DIR``); running
an XP again resumes it from the ``checkpoint.th`` in its folder.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from pathlib import Path

from unittest import mock

import demucs.solver
import dora
from demucs import distrib
from demucs.repitch import RepitchedWrapper
from demucs.wav import MIXTURE
from omegaconf import DictConfig
from torch.utils.data import RandomSampler

import sepclean.dora_compat  # noqa: F401  (dora's orphan check without a terminal; its folders named when unwritable)
from sepclean.clean_manifest import CleanManifest, CleanManifestError
from sepclean.errors import exit_on_user_error
from sepclean.files import write_json
from sepclean.manifest import Manifest
from sepclean.robust import RobustLoss, RobustLossError
from sepclean.scan import ScanError, scan
from sepclean.toolkit import ToolkitError

from . import audio_compat, data, solver_state
from .models import demucs_train
from .robust import PairWeights, robust_losses
from .toolkit import TRACKS, XP_RECORD

logger = logging.getLogger(__name__)

PATH_KEYS = ("wav", "musdb", "metadata", "manifest", "valid_manifest", "clean_manifest")
"""dset keys holding paths, made absolute from where dora runs."""


def _cached(file: Path, build, write, read):
    """Build on rank 0 into ``file`` unless there, then read on every rank (demucs caches its
    dataset metadata the same way; delete the metadata folder after changing a dataset)."""
    if distrib.rank == 0 and not file.is_file():
        write(build(), file)  # both writers make the folder
    distrib.barrier()
    return read(file)


def _scan(folder: Path, sources: list[str]) -> Manifest:
    try:
        return scan([folder], stems=sources, strict=True, progress=False)[0]
    except ScanError as e:
        raise ToolkitError(f"dset.wav: {e}") from None


def split_tracks(dset: DictConfig, key: str, split: str) -> Manifest:
    """A split's tracks: the manifest at ``dset.<key>``, else the folder ``dset.wav/<split>``."""
    if dset[key]:
        return Manifest.load(dset[key])
    if not dset.wav:
        raise ToolkitError(f"no {split} tracks: set dset.wav (a folder holding {split}/) or dset.{key}")
    folder = Path(dset.wav) / split
    name = f"scan_{split}_{hashlib.sha1(str(folder).encode()).hexdigest()[:8]}.jsonl"
    return _cached(
        Path(dset.metadata) / name, lambda: _scan(folder, list(dset.sources)), Manifest.write, Manifest.load
    )


def _metadata(manifest: Manifest, dset: DictConfig) -> dict[str, dict]:
    file = Path(dset.metadata) / f"tracks_{manifest.hash[:16]}.json"
    return _cached(file, lambda: data.build_metadata(manifest), lambda value, f: write_json(f, value),
                   lambda f: json.loads(f.read_text()))


def _with_clean(manifest: Manifest, dset: DictConfig, apply):
    """``apply(clean)`` with the clean manifest of ``dset``, its errors naming the setting."""
    clean = CleanManifest.load(dset.clean_manifest)
    try:
        return apply(clean)
    except CleanManifestError as e:
        other = clean.dataset_hash not in (None, manifest.hash)
        hint = " (dset.allow_other_dataset=true)" if other else ""
        raise CleanManifestError(f"dset.clean_manifest={dset.clean_manifest}: {e}{hint}") from None


def _keep(manifest: Manifest, dset: DictConfig) -> Manifest:
    return _with_clean(manifest, dset, lambda clean: data.keep(manifest, clean, list(dset.sources),
                                                                 dset.allow_other_dataset))


def get_datasets(args: DictConfig):
    """demucs' train and valid sets (Wavsets): the train tracks those the clean manifest keeps, or
    with ``dset.per_stem`` each source over the tracks kept for it (``data.PerStemSet``)."""
    audio_compat.install()
    dset = args.dset
    sources = list(dset.sources)
    train = split_tracks(dset, "manifest", "train")
    train_metadata = _metadata(train, dset)  # of every track: shared by all retrainings
    valid = split_tracks(dset, "valid_manifest", "valid")
    options = dict(samplerate=dset.samplerate, channels=dset.channels, normalize=dset.normalize)
    excerpts = dict(segment=dset.segment, shift=dset.shift)
    if dset.per_stem:
        def per_stem(clean):
            return data.per_stem_set(train, sources, clean, seed=args.seed, metadata=train_metadata,
                                     allow_other_dataset=dset.allow_other_dataset, **excerpts, **options)

        train_set = _with_clean(train, dset, per_stem) if dset.clean_manifest else per_stem(None)
    else:
        if dset.clean_manifest:
            train = _keep(train, dset)
        train_set = data.wavset(train, sources, metadata=train_metadata, **excerpts, **options)
    valid_set = data.wavset(valid, [MIXTURE, *sources], metadata=_metadata(valid, dset),
                            **({} if dset.full_cv else excerpts), **options)
    return train_set, valid_set


def _check_test_set(args: DictConfig) -> None:
    if not args.test.enabled:
        return
    if args.test.nonhq is None and not (args.dset.musdb and (Path(args.dset.musdb) / "test").is_dir()):
        raise ToolkitError(
            f"dset.musdb={args.dset.musdb}: demucs' solver evaluates on <dset.musdb>/test "
            "(MUSDB18-HQ layout) every test.every epochs and after the last one; point dset.musdb "
            "at such a folder"
        )


def get_solver(args: DictConfig):
    """demucs' Solver over sepclean's datasets, restored from the XP's checkpoint if it has one
    (read weights-only, see ``solver_state``)."""
    _check_test_set(args)
    solver_state.install()
    # With model_only, demucs' get_solver seeds torch, builds the model and optimizer and the
    # solver (which restores the checkpoint), and skips the datasets it would build from its own
    # dset keys: the loaders, only read while training, come from sepclean's datasets instead.
    solver = demucs_train().get_solver(args, model_only=True)
    train_set, valid_set = get_datasets(args)
    if args.augment.repitch.proba:
        vocals = [list(args.dset.sources).index("vocals")] if "vocals" in args.dset.sources else []
        train_set = RepitchedWrapper(train_set, vocals=vocals, **args.augment.repitch)
    weights = loss_weights(args)
    if weights is not None:  # after repitch, which reads its examples as tensors
        train_set = data.WeightedSet(train_set, list(args.dset.sources), weights)
    if len(train_set) < args.batch_size:
        raise ToolkitError(
            f"{len(train_set)} training example(s) for batches of {args.batch_size}: lower batch_size "
            "or dset.segment / dset.shift, or keep more tracks"
        )
    logger.info("train/valid set size: %d %d", len(train_set), len(valid_set))
    loader = functools.partial(distrib.loader, num_workers=args.misc.num_workers)
    sampler = None
    if args.epoch_updates:
        if distrib.world_size > 1:
            raise ToolkitError("epoch_updates is for single-process training (distributed training shards each epoch)")
        # Without replacement: every example is drawn once before any is drawn again.
        sampler = RandomSampler(train_set, num_samples=args.epoch_updates * args.batch_size)
    if args.dset.per_stem:
        if distrib.world_size > 1:
            raise ToolkitError("dset.per_stem is for single-process training (its sampler counts the epochs)")
        # Epochs the checkpoint holds are done: a resumed XP draws the next epoch's examples.
        sampler = data.EpochSampler(sampler or RandomSampler(train_set), first_epoch=len(solver.history))
    if sampler is not None:
        train_loader = loader(train_set, batch_size=args.batch_size, sampler=sampler, drop_last=True)
    else:
        train_loader = loader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=True)
    solver.pair_weights = None
    if weights is not None:  # the weights travel beside the sources, through the augmentation, to the loss
        solver.pair_weights = PairWeights()
        train_loader = solver.pair_weights.loader(train_loader)
        solver.augment = solver.pair_weights.augment(solver.augment)
    solver.loaders = {
        "train": train_loader,
        "valid": loader(valid_set, batch_size=1) if args.dset.full_cv
        else loader(valid_set, batch_size=args.batch_size, drop_last=True),
    }
    return solver


AT_LEAST_ONE = ("epochs", "batch_size", "epoch_updates", "max_batches")
"""Config keys that are counts of at least one (the last two may be unset)."""


def check_counts(args: DictConfig) -> None:
    """Refuse a count below one before any data is read (``epochs=0`` would train nothing), and a batch
    that demucs' Remix cannot split into its groups (a ValueError in the first batch)."""
    for key in AT_LEAST_ONE:
        value = args[key]
        if value is None and key in ("epoch_updates", "max_batches"):
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ToolkitError(f"{key} must be a whole number >= 1; got {value!r}")
    group = args.augment.remix.group_size
    if args.augment.remix.proba and group and args.batch_size % group:
        raise ToolkitError(f"batch_size={args.batch_size} must be a multiple of augment.remix.group_size={group} "
                           "(demucs' Remix augmentation shuffles sources within groups of that many examples)")


def loss_weights(args: DictConfig) -> dict[str, dict[str, float]] | None:
    """source -> track -> loss weight, when the clean manifest has weights (its ``weight`` action;
    checked, NaN or negative refused, when it is read)."""
    if not args.dset.clean_manifest:
        return None
    return CleanManifest.load(args.dset.clean_manifest).weights


def robust_training(args: DictConfig) -> RobustLoss | None:
    """The ``robust`` settings, checked before any data is read (None: plain training)."""
    robust = RobustLoss.of({k: args.robust[k] for k in ("truncate", "mask", "warmup", "relative")})
    if robust is not None:
        if not isinstance(args.robust.bin, int) or args.robust.bin < 1:
            raise RobustLossError(f"robust.bin must be a whole number of samples >= 1; got {args.robust.bin!r}")
        robust.check_batch(args.batch_size)
        logger.info("robust training: %s", robust.label())
    return robust


def _no_test(solver, compute_sdr=False) -> dict:
    return {}


@dora.hydra_main(config_path="conf", config_name="config", version_base="1.3")
def main(args: DictConfig) -> None:
    with exit_on_user_error(f"demucs XP {dora.get_xp().sig}"):
        _main(args)


def _main(args: DictConfig) -> None:
    check_counts(args)
    for key in PATH_KEYS:
        if args.dset[key]:
            args.dset[key] = str(dora.to_absolute_path(args.dset[key]))
    if args.misc.verbose:
        for name in ("demucs", __name__):
            logging.getLogger(name).setLevel(logging.DEBUG)
    xp = dora.get_xp()
    logger.info("XP folder (logs, checkpoints): %s", xp.folder)
    if os.environ.get(XP_RECORD) and distrib.rank == 0:  # DemucsToolkit.train asks where its XP is
        write_json(Path(os.environ[XP_RECORD]), {"sig": xp.sig, "folder": str(xp.folder)})
    robust = robust_training(args)
    solver = get_solver(args)
    if distrib.rank == 0:
        write_json(xp.folder / TRACKS, data.trained_tracks(solver.loaders["train"].dataset))
    # demucs' Solver tests on <dset.musdb>/test every test.every epochs and after the last one, with
    # no switch to turn it off; test.enabled=false replaces exactly that call, for this run only.
    with mock.patch.object(demucs.solver, "evaluate", demucs.solver.evaluate if args.test.enabled else _no_test), \
            robust_losses(solver, robust, args.robust.bin, solver.pair_weights):
        solver.train()

