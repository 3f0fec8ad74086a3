"""Open-Unmix run folders, as upstream's scripts/train.py writes them and ``umx`` reads them::

    <target>.pth     weights of the best validation epoch (a state dict)
    <target>.chkpnt  the latest epoch: weights, optimizer and scheduler, to resume from
    <target>.json    the training arguments and loss history
    separator.json   the STFT settings shared by the run's targets
    epochs/e<epoch>/ with ``--save-every K``: every K-th epoch's weights, a run folder of its own

``openunmix.utils.load_separator(folder, targets=[...])`` loads what this package writes; ``load_model``
reads the same files with the checks a user needs (missing, corrupt, wrong toolkit, wrong target).
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from openunmix.model import OpenUnmix

from sepclean import checkpoints, files
from sepclean.toolkit import ToolkitError
from sepclean_plugins.openunmix.spectrogram import StftConfig, attach

SEPARATOR = "separator.json"
WEIGHTS, STATE, HISTORY = ".pth", ".chkpnt", ".json"


def weights_path(folder, target: str) -> Path:
    return Path(folder) / f"{target}{WEIGHTS}"


def state_path(folder, target: str) -> Path:
    return Path(folder) / f"{target}{STATE}"


def history_path(folder, target: str) -> Path:
    return Path(folder) / f"{target}{HISTORY}"


def epoch_folder(folder, epoch: int) -> Path:
    """Where ``--save-every`` keeps one epoch's weights: a run folder of its own."""
    return Path(folder) / "epochs" / f"e{epoch:04d}"


# An interrupted run must leave the previous epoch's files intact, or it cannot resume: both write
# atomically.

def write_json(path, data: dict) -> None:
    files.write_json(path, data, indent=4)


def save(path, obj) -> None:
    """``torch.save`` into memory, then one atomic write: torch writing to a full disk itself raises
    a RuntimeError from its zip writer that names neither the file nor the cause."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    files.atomic_write(path, buffer.getvalue())


def read_json(path) -> dict:
    data = files.read_json(path, ToolkitError)
    if not isinstance(data, dict):
        raise ToolkitError(f"{path}: corrupt (not a JSON object)")
    return data


def read_stft(folder) -> StftConfig:
    path = Path(folder) / SEPARATOR
    data = read_json(path)
    try:
        return StftConfig.from_json(data)
    except (KeyError, TypeError, ValueError) as e:
        raise ToolkitError(f"{path}: corrupt ({type(e).__name__}: {e})") from None


def load(path, device="cpu") -> dict:
    """A torch file written by this package or upstream, without unpickling arbitrary objects."""
    return checkpoints.load(path, ToolkitError, map_location=device)


def build_model(args: dict, max_bin: int, input_mean=None, input_scale=None) -> OpenUnmix:
    """An OpenUnmix module shaped by a run's arguments (``<target>.json``'s ``args``)."""
    return OpenUnmix(
        nb_bins=int(args["nfft"]) // 2 + 1,
        nb_channels=int(args["nb_channels"]),
        hidden_size=int(args["hidden_size"]),
        # openunmix.utils.load_target_models ignores this flag; unidirectional runs need it.
        unidirectional=bool(args.get("unidirectional", False)),
        max_bin=max_bin,
        input_mean=input_mean,
        input_scale=input_scale,
    )


def _looks_like_demucs(path: Path) -> bool:
    if path.is_file():
        return path.suffix == ".th"
    return any(path.glob("*.th")) or (path / ".argv.json").is_file()


def _not_openunmix(path: Path) -> ToolkitError:
    hint = " It looks like a Demucs checkpoint." if _looks_like_demucs(path) else ""
    return ToolkitError(
        f"{path}: not an Open-Unmix checkpoint: expected a run folder holding {SEPARATOR}, <target>.pth "
        f"and <target>.json (as Open-Unmix's training writes), or one of its .pth/.chkpnt files.{hint}"
    )


def targets_in(folder) -> list[str]:
    """Targets a run folder holds a model for."""
    return sorted(p.stem for p in Path(folder).glob(f"*{WEIGHTS}") if history_path(folder, p.stem).is_file())


def locate(path, target: str) -> tuple[Path, Path]:
    """``(run folder, weights file)`` of ``target`` for a run folder or one of its files."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ToolkitError(f"{path}: no such checkpoint")
    if path.is_file():
        if path.suffix not in (WEIGHTS, STATE):
            raise _not_openunmix(path)
        if path.stem != target:
            raise ToolkitError(f"{path}: this is the model of target {path.stem!r}, not {target!r}")
        folder, weights = path.parent, path
    else:
        folder, weights = path, weights_path(path, target)
    if not (folder / SEPARATOR).is_file():
        raise _not_openunmix(path)
    if not weights.is_file() or not history_path(folder, target).is_file():
        have = ", ".join(targets_in(folder)) or "none"
        raise ToolkitError(f"{folder}: no Open-Unmix model for target {target!r} (it has models for: {have})")
    return folder, weights


def load_model(path, target: str, device="cpu") -> OpenUnmix:
    """The model of ``target`` from a run folder (best weights) or a .pth/.chkpnt file, in eval mode."""
    folder, weights = locate(path, target)
    stft = read_stft(folder)
    history = read_json(history_path(folder, target))
    args = history.get("args")
    if not isinstance(args, dict):
        raise ToolkitError(f"{history_path(folder, target)}: corrupt (no training arguments)")
    trained_for = args.get("target", target)
    if trained_for != target:
        raise ToolkitError(f"{weights}: the model was trained for target {trained_for!r}, not {target!r}")

    state = load(weights, device)
    if weights.suffix == STATE:
        state = state.get("state_dict") if isinstance(state, dict) else None
    if not isinstance(state, dict) or not isinstance(state.get("input_mean"), torch.Tensor):
        raise _not_openunmix(weights)
    try:
        model = build_model(args, max_bin=state["input_mean"].shape[0])
        model.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        described = history_path(folder, target).name
        raise ToolkitError(f"{weights}: does not match the model described in {described} ({e})") from None
    return attach(model.to(device).eval(), stft)
