"""Named sets of training defaults for machines far smaller than the ones Open-Unmix was tuned on.

A preset only changes defaults: options given on the command line still win, and without
``--preset`` the training script keeps upstream's full-size defaults (hidden size 512, 4096-point
STFT, 6 s excerpts, 1000 epochs).
"""

from __future__ import annotations

import argparse

PRESETS: dict[str, dict] = {
    # Tests and the synthetic demo on 2 CPU cores: seconds per epoch on the tiny profile.
    "tiny": dict(
        hidden_size=32, nfft=1024, nhop=512, bandwidth=16000, seq_dur=2.0,
        epochs=10, batch_size=4, patience=20, lr_decay_patience=10,
    ),
    # CPU experiments on the small/bench synthetic profiles (minutes per run).
    "small": dict(
        hidden_size=64, nfft=2048, nhop=512, bandwidth=16000, seq_dur=4.0,
        epochs=100, batch_size=8, patience=30, lr_decay_patience=20,
    ),
}


def apply(parser: argparse.ArgumentParser, name: str | None) -> None:
    """Make preset ``name``'s values the parser's defaults (no-op for None)."""
    if name is None:
        return
    if name not in PRESETS:
        parser.error(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    parser.set_defaults(**PRESETS[name])
