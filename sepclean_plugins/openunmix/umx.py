"""Open-Unmix's own ``umx`` command, working on the tested stack and on models trained here::

    python -m sepclean_plugins.openunmix.umx song.wav --model runs/umx --outdir separated [umx options]

It is upstream's ``openunmix.cli.separate`` (every option as ``umx --help`` lists them), run after
``audio_compat.install()``: upstream's ``umx`` reads and writes audio through torchaudio calls that
torchaudio >= 2.9 no longer has. ``--model`` takes a run folder written by
``sepclean_plugins.openunmix.train``; ``--audio-backend`` is accepted and ignored (audio goes
through soundfile). One change while it runs: ``openunmix.utils.load_target_models`` reads a run
folder's models through ``checkpoint.load_model`` (weights-only, each file checked), so a planted or
damaged ``.pth`` is a one-line error naming it, not a traceback; released models (``--model umxl``)
load as upstream loads them. Without ``--targets``, a run folder separates every target it holds a
model for (upstream asks for ``--targets``), the rest of the mixture as ``residual.wav`` when they are
not all four stems. Its bar over the input files is drawn on a terminal only (``sepclean.progress``).
Errors a user can act on print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import functools
import sys
import types
from pathlib import Path
from unittest import mock

import openunmix.cli
import openunmix.utils
import tqdm

from sepclean import STEMS
from sepclean.errors import SepcleanError
from sepclean.progress import bars
from sepclean.toolkit import ToolkitError
from sepclean_plugins.openunmix import audio_compat, checkpoint

_upstream_load_target_models = openunmix.utils.load_target_models


def load_target_models(targets, model_str_or_path="umxl", device="cpu", pretrained=True):
    """``openunmix.utils.load_target_models``, reading a local run folder with ``checkpoint.load_model``."""
    if not Path(model_str_or_path).expanduser().exists():
        return _upstream_load_target_models(targets, model_str_or_path, device, pretrained)
    targets = [targets] if isinstance(targets, str) else targets
    return {target: checkpoint.load_model(model_str_or_path, target, device) for target in targets}


def with_run_targets(argv: list[str]) -> list[str]:
    """``argv`` with ``--targets`` set to the targets a run folder ``--model`` holds models for, when
    it names none (upstream refuses a local model without ``--targets``; a run's ``separator.json``
    holds the STFT settings only, so the targets are the ``<target>.pth`` + ``<target>.json`` pairs).
    When they are not all four stems and no ``--residual`` is given, the rest of the mixture is a
    residual source (``residual.wav``), as ``sepclean evaluate`` separates (upstream cannot run its
    EM on a single target without one)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--model")
    parser.add_argument("--targets", nargs="+")
    parser.add_argument("--residual")
    known, _ = parser.parse_known_args(argv)
    if known.targets or not known.model or not Path(known.model).expanduser().is_dir():
        return argv
    folder = Path(known.model).expanduser()
    targets = checkpoint.targets_in(folder)
    if not targets:
        raise ToolkitError(f"{folder}: no Open-Unmix model in this run folder (no <target>.pth with its "
                           "<target>.json)")
    residual = [] if known.residual or set(STEMS) <= set(targets) else ["--residual", "residual"]
    return [*argv, "--targets", *targets, *residual]


def main(argv: list[str] | None = None) -> int:
    audio_compat.install()
    saved = sys.argv
    try:
        sys.argv = ["umx", *with_run_targets(sys.argv[1:] if argv is None else argv)]  # separate() parses sys.argv
        quiet_off_a_terminal = types.SimpleNamespace(tqdm=functools.partial(tqdm.tqdm, disable=not bars()))
        with mock.patch.object(openunmix.utils, "load_target_models", load_target_models), \
                mock.patch.object(openunmix.cli, "tqdm", quiet_off_a_terminal):
            openunmix.cli.separate()
    except SepcleanError as e:
        print(f"umx: error: {e}", file=sys.stderr)
        return 2
    finally:
        sys.argv = saved
    return 0


if __name__ == "__main__":
    sys.exit(main())
