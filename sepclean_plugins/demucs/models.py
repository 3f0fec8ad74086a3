"""Demucs models: demucs' own builders, and trained models from checkpoints."""

from __future__ import annotations

import importlib
import typing
from pathlib import Path
from unittest import mock

import dora
import torch
from demucs import states
from demucs.demucs import Demucs
from demucs.hdemucs import HDemucs
from demucs.htdemucs import HTDemucs
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.base import ContainerMetadata, Metadata
from omegaconf.nodes import AnyNode

from sepclean import checkpoints
from sepclean.toolkit import ToolkitError

MODEL_CLASSES = (Demucs, HDemucs, HTDemucs)
"""The classes a demucs model package may name: nothing else is unpickled from one."""


def _resolver_cache(default_factory=None) -> dict:
    """Stands in for ``collections.defaultdict`` while unpickling a solver state. Its only one is
    the OmegaConf config's resolver cache, ``defaultdict(dict)``, and torch's weights-only
    unpickler sets items on plain dicts only; the cache is emptied after loading."""
    return {}


SOLVER_CONFIG_GLOBALS = [DictConfig, ListConfig, ContainerMetadata, Metadata, AnyNode, typing.Any, dict, list, int,
                         (_resolver_cache, "collections.defaultdict")]
"""What unpickling the OmegaConf config in a solver state (``checkpoint.th``'s ``args``) needs."""

BEST = "best.th"
"""What demucs' solver writes into the XP folder: the best model so far, as a model package."""

SOLVER_STATE = "checkpoint.th"
"""The solver's training state (latest and best weights, optimizer, history, config)."""


def demucs_train():
    """The ``demucs.train`` module, for its ``get_model``, ``get_optimizer`` and ``get_solver``.

    Importing it runs ``@dora.hydra_main(config_path="../conf")`` on its ``main``, which composes
    demucs' config at once, and the demucs wheel has no ``conf/``: the import fails. The decorator
    is replaced by the identity for the duration of the import only; the builders never use
    ``main``, and sepclean's own dora main (``train.py``) replaces it.
    """
    with mock.patch.object(dora, "hydra_main", lambda **_: lambda main: main):
        return importlib.import_module("demucs.train")


def read_package(path: Path) -> dict:
    """A checkpoint file, unpickled weights-only with exactly demucs' model classes allowed, and for
    solver states written before ``solver_state`` saved them as plain data, the OmegaConf pieces of
    their config and numpy scalars (their history's metrics), so a file received from someone else
    cannot run code (demucs' own loaders unpickle in full)."""
    allowed = [*MODEL_CLASSES, *SOLVER_CONFIG_GLOBALS, *checkpoints.NUMPY_SCALARS]
    package = checkpoints.load(path, ToolkitError, allowed)
    if not isinstance(package, dict):
        raise ToolkitError(f"{path}: holds a {type(package).__name__}, not a demucs checkpoint")
    if isinstance(package.get("args"), DictConfig):
        OmegaConf.clear_cache(package["args"])  # a plain dict now, see _resolver_cache
    return package


def _checkpoint_file(path: Path) -> Path:
    if path.is_file():
        return path
    if not path.exists():
        raise ToolkitError(f"{path}: no such checkpoint file or run folder")
    for name in (BEST, SOLVER_STATE):
        if (path / name).is_file():
            return path / name
    held = ", ".join(sorted(p.name for p in path.iterdir())[:10]) or "nothing"
    raise ToolkitError(
        f"{path}: not a demucs run folder (no {BEST} or {SOLVER_STATE}; it holds {held}). "
        "Pass the dora XP folder of a demucs training run, or one of those files."
    )


def load_model(checkpoint: str | Path) -> torch.nn.Module:
    """A demucs model from a run folder (dora XP folder), its ``best.th`` or ``checkpoint.th``, or
    an exported model package. In a run folder, ``best.th`` is preferred: both hold the same best
    weights. The returned model carries ``training_args`` (a plain dict; empty when unknown)."""
    path = _checkpoint_file(Path(checkpoint))
    package = read_package(path)
    if "klass" in package:  # demucs.states.serialize_model's package: best.th, exported models
        if package["klass"] not in MODEL_CLASSES:
            raise ToolkitError(f"{path}: names model class {package['klass']!r}, not a demucs model")
        model = build(path, states.load_model, package)
        training_args = package.get("training_args") or {}
    elif isinstance(package.get("args"), (dict, DictConfig)) and "state" in package:  # solver state
        args = OmegaConf.create(package["args"])  # a plain dict since solver_state, a DictConfig before
        model = build(path, demucs_train().get_model, args)
        best = package.get("best_state")
        build(path, model.load_state_dict, package["state"] if best is None else best)
        training_args = OmegaConf.to_container(args, resolve=True)
    else:
        keys = ", ".join(sorted(map(str, package))[:8])
        raise ToolkitError(
            f"{path}: not a demucs checkpoint (keys: {keys}); demucs runs save {BEST} and "
            f"{SOLVER_STATE}. An Open-Unmix model loads with --toolkit openunmix."
        )
    model.training_args = training_args
    return model


def build(path: Path, make, *args):
    """``make(*args)``, an error that says the weights in ``path`` do not fit when they do not."""
    try:
        return make(*args)
    except (RuntimeError, TypeError, KeyError, ValueError) as e:
        raise ToolkitError(f"{path}: its weights do not fit the model it describes ({e})") from None
