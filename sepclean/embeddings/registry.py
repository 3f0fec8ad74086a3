"""The embedding backends by name. Each module exposes ``create(**options)``; it is imported only
when its backend is asked for, so the built-in one never imports transformers."""

from __future__ import annotations

import importlib
import inspect

from sepclean.embeddings.base import EmbeddingBackend, EmbeddingError

DEFAULT = "spectral"
BACKENDS: dict[str, tuple[str, str]] = {
    "spectral": ("sepclean.embeddings.spectral", "64-band log-mel frames at 44.1 kHz, 43/s: built in, no weights"),
    "clap": ("sepclean.embeddings.clap", "LAION CLAP audio (HTSAT, 48 kHz, 512-d, 10 s windows, 1/s)"),
    "mert": ("sepclean.embeddings.mert", "MERT-v1-95M hidden states (24 kHz, 768-d, 75/s)"),
}


def create(name: str, **options) -> EmbeddingBackend:
    """Build a backend. Options left ``None`` take the backend's default; an option the backend
    does not take (``layer`` for CLAP, ``weights`` for spectral) is an error, not silently dropped."""
    if name not in BACKENDS:
        raise EmbeddingError(f"unknown embedding {name!r}; choose from {', '.join(BACKENDS)}")
    factory = importlib.import_module(BACKENDS[name][0]).create
    given = {key: value for key, value in options.items() if value is not None}
    unknown = sorted(set(given) - set(inspect.signature(factory).parameters))
    if unknown:
        raise EmbeddingError(f"the {name} embedding takes no {', '.join(unknown)} option")
    return factory(**given)
