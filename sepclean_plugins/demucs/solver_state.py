"""demucs' solver state (``<xp.folder>/checkpoint.th``), written as plain data and read weights-only.

``demucs.solver.Solver._reset`` reads the XP's ``checkpoint.th`` (on every resume, and the
``continue_from`` XP's) with ``torch.load(..., weights_only=False)``: a file planted in an XP
folder runs its code when the XP is run again, by ``dora run`` or by a grid resuming its Demucs
training. ``install()`` replaces exactly two methods of ``demucs.solver.Solver``, the only place
this plugin changes how demucs saves or loads training state:

- ``_serialize`` writes the same package with the OmegaConf config as a plain dict and numpy
  values as Python numbers or tensors, so ``torch.load(weights_only=True)`` reads it with no
  class allowed (``best.th`` stays demucs' model package: its ``klass`` is one of demucs' models);
- ``_reset`` reads ``checkpoint.th`` through ``models.read_package`` (weights-only, with demucs'
  model classes and, for states written before this change, an OmegaConf config allowed); a
  file holding anything else is refused with an error naming it and is never unpickled.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from demucs import states
from demucs.solver import Solver
from omegaconf import DictConfig, ListConfig, OmegaConf

from sepclean import checkpoints
from sepclean.toolkit import ToolkitError
from sepclean_plugins.patching import Patches

from .models import SOLVER_STATE, build, read_package

logger = logging.getLogger("demucs.solver")  # the messages demucs' own _reset logs, in its logger

_patches = Patches()
_demucs_reset = Solver._reset


def plain(value):
    """``value`` as tensors, dicts, lists, tuples, strings, numbers, booleans and None only."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(item) for item in value)
    return value


def _serialize(solver: Solver, epoch: int) -> None:
    """demucs' ``Solver._serialize``, writing ``checkpoint.th`` as plain data (see ``plain``)."""
    package = {
        "state": solver.model.state_dict(),
        "optimizer": solver.optimizer.state_dict(),
        "history": solver.history,
        "best_state": solver.best_state,
        "args": solver.args,
    }
    for kind, emas in solver.emas.items():
        for k, ema in enumerate(emas):
            package[f"ema_{kind}_{k}"] = ema.state_dict()
    package = plain(package)
    checkpoints.save(solver.checkpoint_file, package)  # a full disk: an OutputError naming the file
    save_every = solver.args.save_every
    if save_every and (epoch + 1) % save_every == 0 and epoch + 1 != solver.args.epochs:
        checkpoints.save(solver.folder / f"checkpoint_{epoch + 1}.th", package)
    if solver.best_changed:
        best = states.serialize_model(solver.model, solver.args)
        best["state"] = solver.best_state
        checkpoints.save(solver.best_file, best)
        solver.best_changed = False


def read_state(path: Path) -> dict:
    """A solver state from ``path``, weights-only; anything but a solver state is refused by name."""
    package = read_package(path)
    missing = [key for key in ("state", "optimizer", "history", "best_state") if key not in package]
    if missing:
        raise ToolkitError(f"{path}: not a demucs solver state (no {', '.join(missing)}); "
                           "delete it to train this XP from the start")
    return package


def _reset(solver: Solver) -> None:
    """demucs' ``Solver._reset`` (resume from the XP's checkpoint, or start from ``continue_from``'s),
    reading the files through ``read_state``. ``continue_pretrained`` is left to demucs: it
    downloads a released model and checks its hash."""
    args = solver.args
    if solver.checkpoint_file.exists():
        logger.info("Loading checkpoint model: %s", solver.checkpoint_file)
        package = read_state(solver.checkpoint_file)
        build(solver.checkpoint_file, solver.model.load_state_dict, package["state"])
        build(solver.checkpoint_file, solver.optimizer.load_state_dict, package["optimizer"])
        solver.history[:] = package["history"]
        solver.best_state = package["best_state"]
        for kind, emas in solver.emas.items():
            for k, ema in enumerate(emas):
                key = f"ema_{kind}_{k}"
                if key not in package:
                    raise ToolkitError(f"{solver.checkpoint_file}: holds no {key}, which ema.{kind} asks for")
                build(solver.checkpoint_file, ema.load_state_dict, package[key])
    elif args.continue_pretrained:
        _demucs_reset(solver)
    elif args.continue_from:
        path = solver.folder.parent / str(args.continue_from) / SOLVER_STATE
        logger.info("Loading from %s", path)
        package = read_state(path)
        solver.best_state = package["best_state"]
        start = package["best_state"] if args.continue_best else package["state"]
        build(path, lambda state: solver.model.load_state_dict(state, strict=False), start)
        if args.continue_opt:
            build(path, solver.optimizer.load_state_dict, package["optimizer"])


def install() -> None:
    """Replace ``Solver._serialize`` and ``Solver._reset`` (idempotent)."""
    _patches.install([(Solver, "_serialize", _serialize), (Solver, "_reset", _reset)])
