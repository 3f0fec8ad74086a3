"""What FAD and the MLP share: the non-silent frames of every (track, source), read back from the
cache one song at a time, and the rule for songs too quiet to score.

Silent frames are left out everywhere (stems are often silent for long stretches: a silent frame
says nothing about the stem's quality and would pull every statistic towards silence). A frame is
silent when its RMS level is at or below ``silence_db`` dBFS over the audio it summarises.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from sepclean.embeddings.base import EmbeddingBackend, EmbeddingError
from sepclean.embeddings.cache import EmbeddingCache
from sepclean.embeddings.extract import content_key, embed_tracks
from sepclean.manifest import Track
from sepclean.scores import ScoresError

DEFAULT_SILENCE_DB = -60.0


class SongEmbeddings:
    def __init__(
        self, backend: EmbeddingBackend, cache: EmbeddingCache | None = None, silence_db: float = DEFAULT_SILENCE_DB
    ):
        self.backend, self.cache, self.silence_db = backend, cache or EmbeddingCache(), silence_db

    def compute(
        self,
        tracks: Iterable[Track],
        sources: Sequence[str],
        batch_size: int = 8,
        workers: int = 2,
        progress: bool = True,
    ) -> int:
        """Embed what the cache lacks; returns how many sources were computed."""
        return embed_tracks(tracks, sources, self.backend, self.cache, batch_size, workers, progress)

    def active(self, track: Track, source: str) -> np.ndarray:
        """Non-silent frames, ``(n, dim)`` as stored (float16 unless out of range)."""
        return self._cached(track, source, self.cache.get).active(self.silence_db)

    def active_count(self, track: Track, source: str) -> int:
        return int((self._cached(track, source, self.cache.loudness) > self.silence_db).sum())

    def _cached(self, track: Track, source: str, read):
        """``read(backend, key)`` of an entry, computed first when the cache lacks it (or just
        removed it as corrupt)."""
        key = content_key(track, source)
        value = read(self.backend, key)
        if value is None:
            embed_tracks([track], [source], self.backend, self.cache, progress=False)
            value = read(self.backend, key)
        if value is None:
            raise EmbeddingError(f"the {self.backend.name} embedding of {track.id}/{source} could not be read back "
                                 f"from the cache in {self.cache.root}")
        return value

    def describe(self) -> dict:
        """The run's embedding settings, for the scores table's metadata."""
        return {"embedding": self.backend.describe(), "silence_db": self.silence_db, "cache": str(self.cache.root)}


def fill_unscored(column: dict[str, float | None]) -> tuple[dict[str, float], list[str]]:
    """Give songs without a score (too few active frames) the column's median: a neutral score, so
    that neither per-target filtering nor ranking favours or drops a song for being silent there."""
    known = [value for value in column.values() if value is not None]
    if not known:
        raise ScoresError("no song could be scored: every one is silent or too short")
    median = float(np.median(known))
    missing = [track for track, value in column.items() if value is None]
    return {track: median if value is None else value for track, value in column.items()}, missing
