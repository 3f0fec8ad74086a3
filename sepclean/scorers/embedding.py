"""Methods on frame embeddings of the stems: per-song FAD (blind) and the MLP stem classifier."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sepclean
from sepclean.scorers.base import Scorer, ScoringTask, register
from sepclean.field_docs import setting
from sepclean.scores import ScoreTable


@dataclass(frozen=True)
class EmbeddingScorer(Scorer):
    """Settings every embedding method shares."""

    embedding: str = "spectral"
    """Frame embeddings (``sepclean.embeddings.BACKENDS``): spectral (built-in log-mel features), clap or mert."""
    weights: str | None = None
    """clap: a transformers folder, a Hugging Face id in the local cache (None: laion/larger_clap_music) or a
    LAION-CLAP .pt file; mert: a folder or cached id (None: m-a-p/MERT-v1-95M). Never downloaded."""
    layer: int | None = None
    """mert: the hidden state to use, 0-12 (None: the last, as fadtk)."""
    stems: tuple[str, ...] = tuple(sepclean.STEMS)
    """The stems to score."""
    silence_db: float = -60.0
    """Frames at or below this RMS level (dBFS) are left out."""
    min_active: float = 1.0
    """Seconds of non-silent audio below which a source gets its target's median score."""
    seed: int = 0
    """Seed of the frame subsets and of the MLP's training."""
    cache: str | None = setting(None, identity=False)
    """Embedding cache folder (None: $SEPCLEAN_CACHE or ~/.cache/sepclean)."""
    batch_size: int = setting(8, identity=False)
    """Audio chunks per model call."""

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
    """The per-song ``all`` score: mean (of the stems' scores) or mixture (the mixture's own FAD)."""
    frames: int | str = "auto"
    """Frames each song is scored on: auto (the fewest any song has, so that length does not bias the
    ranking), all (fadtk's per-song FAD, length-biased), or a number >= 2."""
    draws: int = 8
    """Disjoint random frame subsets averaged per song."""

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
    """Training epochs of the classifier."""
    lr: float = 1e-3
    """Adam learning rate."""
    train_batch_size: int = 256
    """Frames per training step."""
    weight_decay: float = 0.0
    """Adam weight decay."""
    frames_per_song: int = 2000
    """Training frames drawn from each reference stem, at most."""

    def score(self, task: ScoringTask, workdir: Path) -> ScoreTable:
        from sepclean.mlp import mlp_table

        return mlp_table(task.train, task.reference, self.songs(task), epochs=self.epochs, lr=self.lr,
                         train_batch_size=self.train_batch_size, weight_decay=self.weight_decay,
                         frames_per_song=self.frames_per_song, **self.common(task))
