"""What an embedding backend is: a frozen audio model turning mono audio into frame embeddings.

A backend declares its sample rate, its embedding dimension and how its frames lie in the audio
(:class:`Framing`); the engine in :mod:`.extract` cuts songs into chunks, batches them across songs
and reassembles each song's frames. A backend only embeds equal-length batches of chunks.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch

from sepclean.errors import SepcleanError


class EmbeddingError(SepcleanError, RuntimeError):
    """A backend that cannot be built or run as asked; the message says what to do."""


class WeightsNotFoundError(EmbeddingError):
    """Model weights that are neither a local path nor in the Hugging Face cache."""


@dataclass(frozen=True)
class Framing:
    """Where a backend's frames lie, in samples at its sample rate.

    A song is cut into chunks of ``chunk`` samples starting every ``chunk_hop`` samples, the last
    one as near the song's end as a multiple of ``frame_hop`` allows (a song shorter than a chunk
    is one short chunk). Frame ``j`` of a
    chunk starting at ``s`` covers ``[s + j * frame_hop, s + j * frame_hop + frame_span)``: its
    loudness is measured there, and a frame starting less than ``frame_hop`` after the previous kept
    frame (the overlap of the end-aligned chunk) is dropped.
    """

    chunk: int
    chunk_hop: int
    frame_hop: int
    frame_span: int

    def __post_init__(self):
        if min(self.chunk, self.chunk_hop, self.frame_hop, self.frame_span) < 1:
            raise ValueError(f"framing lengths must be positive: {self}")


class EmbeddingBackend(ABC):
    """A frozen model mapping ``(batch, samples)`` mono audio to ``(batch, frames, dim)``."""

    name: ClassVar[str]
    sample_rate: int
    dim: int
    framing: Framing
    device: torch.device

    @property
    def frame_rate(self) -> float:
        """Frames per second of audio."""
        return self.sample_rate / self.framing.frame_hop

    def frames_for(self, seconds: float) -> int:
        return max(1, math.ceil(seconds * self.frame_rate))

    @abstractmethod
    def config(self) -> dict:
        """Everything that determines the embeddings (weights identity included): JSON-serialisable.
        It keys the embedding cache and is recorded in every scores table."""

    @abstractmethod
    def embed(self, chunks: torch.Tensor) -> torch.Tensor:
        """Float32 ``(batch, samples)`` at ``sample_rate`` on CPU -> float32 ``(batch, frames, dim)``.
        Chunks of one batch have the same length: ``framing.chunk`` or less for a short song."""

    def describe(self) -> dict:
        """Config plus the derived figures a scores table records."""
        return {
            "name": self.name,
            "sample_rate": self.sample_rate,
            "dim": self.dim,
            "frame_rate": self.frame_rate,
            "config": self.config(),
        }


def default_device(device: str | torch.device | None = None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
