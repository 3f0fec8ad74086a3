"""Open-Unmix's own ``umx`` command, working on the tested stack and on models trained here::

    python -m sepclean_plugins.openunmix.umx song.wav --model runs/umx --outdir separated [umx options]

It is upstream's ``openunmix.cli.separate`` (every option as ``umx --help`` lists them), run after
``audio_compat.install()``: upstream's ``umx`` reads and writes audio through torchaudio calls that
torchaudio >= 2.9 no longer has. ``--model`` takes a run folder written by
``sepclean_plugins.openunmix.train``; ``--audio-backend`` is accepted and ignored (audio goes
through soundfile). One change while it runs: ``openunmix.utils.load_target_models`` reads a run
folder's models through ``checkpoint.load_model`` (weights-only, each file checked), so a planted or
damaged ``.pth`` is a one-line error naming it, not a traceback; released models (``--model umxl``)
load as upstream loads them. Errors a user can act on print one line and exit with status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from unittest import mock

import openunmix.cli
import openunmix.utils

from sepclean.errors import SepcleanError
from sepclean_plugins.openunmix import audio_compat, checkpoint

_upstream_load_target_models = openunmix.utils.load_target_models


def load_target_models(targets, model_str_or_path="umxl", device="cpu", pretrained=True):
    """``openunmix.utils.load_target_models``, reading a local run folder with ``checkpoint.load_model``."""
    if not Path(model_str_or_path).expanduser().exists():
        return _upstream_load_target_models(targets, model_str_or_path, device, pretrained)
    targets = [targets] if isinstance(targets, str) else targets
    return {target: checkpoint.load_model(model_str_or_path, target, device) for target in targets}


def main(argv: list[str] | None = None) -> int:
    audio_compat.install()
    saved = sys.argv
    sys.argv = ["umx", *(sys.argv[1:] if argv is None else argv)]  # separate() parses sys.argv
    try:
        with mock.patch.object(openunmix.utils, "load_target_models", load_target_models):
            openunmix.cli.separate()
    except SepcleanError as e:
        print(f"umx: error: {e}", file=sys.stderr)
        return 2
    finally:
        sys.argv = saved
    return 0


if __name__ == "__main__":
    sys.exit(main())
