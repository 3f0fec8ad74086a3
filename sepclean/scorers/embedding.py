"""Methods on frame embeddings of the stems: per-song FAD (blind) and the MLP stem classifier."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sepclean
from sepclean.scorers.base import Scorer, ScoringTask, register, setting
from sepclean.scores import ScoreTable


@dataclass(frozen=True)
class EmbeddingScorer(Scorer):
    """Settings every embedding method shares."""

    embedding: str = "spectral"
    weights: str | None = None
    layer: int | None = None
    stems: tuple[str, ...] = tuple(sepclean.STEMS)
    silence_db: float = -60.0
    min_active: float = 1.0
    """Seconds of non-silent audio below which a source gets its target's median score."""
    seed: int = 0
    cache: str | None = setting(None, identity=False)
    batch_size: int = setting(8, identity=False)

    def __post_init__(self):
        object.__setattr__(self, "stems", tuple(self.stems))

    def songs(self, task: ScoringTask):
        from sepclean.embeddings import EmbeddingCache, SongEmbeddings, create_backend

        device = "cpu" if self.embedding == "spectral" else task.device  # log-mel frames are cheap on the CPU
        backend = create_backend(self.embedding, weights=self.weights, layer=self.layer, device=device)
        return SongEmbeddings(backend, EmbeddingCache(self.cache), self.silence_db)

    def common(self, task: ScoringTask) -> dict:
        return dict(stems=list(self.stems), min_active_seconds=self.min_active, seed=self.seed,
                    batch_size=self.batch_size, progress=task.progress)


@register
@dataclass(frozen=True)
class Fad(EmbeddingScorer):
    """Per-song Fréchet Audio Distance of each stem to the reference stems (negated)."""

    name = "fad"
    unified: str = "mean"
    frames: int | str = "auto"
    draws: int = 8

    def score(self, task: ScoringTask, workdir: Path) -> ScoreTable:
        from sepclean.fad import fad_table

        return fad_table(task.train, task.reference, self.songs(task), unified=self.unified, frames=self.frames,
                         draws=self.draws, **self.common(task))


@register
@dataclass(frozen=True)
class Mlp(EmbeddingScorer):
    """The noise-specific baseline: a stem classifier trained on the reference stems; a stem's score
    is the mean probability of its own class."""

    name = "mlp"
    blind = False
    epochs: int = 20
    lr: float = 1e-3
    train_batch_size: int = 256
    weight_decay: float = 0.0
    frames_per_song: int = 2000

    def score(self, task: ScoringTask, workdir: Path) -> ScoreTable:
        from sepclean.mlp import mlp_table

        return mlp_table(task.train, task.reference, self.songs(task), epochs=self.epochs, lr=self.lr,
                         train_batch_size=self.train_batch_size, weight_decay=self.weight_decay,
                         frames_per_song=self.frames_per_song, **self.common(task))
