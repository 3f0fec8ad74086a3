"""Named sets of training defaults for machines far smaller than the ones Open-Unmix was tuned on.

A preset only changes defaults: settings given explicitly still win, and without ``--preset``
the training keeps upstream's full-size defaults (``config.TrainingConfig``).
"""

from __future__ import annotations

from sepclean.toolkit import ToolkitError

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


def values(name: str | None) -> dict:
    """Preset ``name``'s settings (none for None)."""
    if name is None:
        return {}
    if name not in PRESETS:
        raise ToolkitError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    return PRESETS[name]
