"""Open-Unmix's own ``umx`` command, working on the tested stack and on models trained here::

    python -m sepclean_plugins.openunmix.umx song.wav --model runs/umx --outdir separated [umx options]

It is upstream's ``openunmix.cli.separate`` unchanged (every option as ``umx --help`` lists them),
run after ``audio_compat.install()``: upstream's ``umx`` reads and writes audio through torchaudio
calls that torchaudio >= 2.9 no longer has. ``--model`` takes a run folder written by
``sepclean_plugins.openunmix.train``; ``--audio-backend`` is accepted and ignored (audio goes
through soundfile).
"""

from __future__ import annotations

import sys

import openunmix.cli

from sepclean_plugins.openunmix import audio_compat


def main(argv: list[str] | None = None) -> int:
    audio_compat.install()
    saved = sys.argv
    sys.argv = ["umx", *(sys.argv[1:] if argv is None else argv)]  # separate() parses sys.argv
    try:
        openunmix.cli.separate()
    finally:
        sys.argv = saved
    return 0


if __name__ == "__main__":
    sys.exit(main())
