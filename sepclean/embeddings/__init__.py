"""Frame embeddings of songs, behind one registry, cached by audio content.

    from sepclean.embeddings import create_backend, SongEmbeddings
    backend = create_backend("mert", weights="m-a-p/MERT-v1-95M", layer=12)
    songs = SongEmbeddings(backend)                     # cache: $SEPCLEAN_CACHE or ~/.cache/sepclean
    songs.compute(manifest, ["mixture", "vocals"])      # batched, chunked, only what is missing
    frames = songs.active(manifest["song_0003"], "vocals")

Backends (:mod:`.registry`): ``spectral`` (built in, no weights), ``clap``, ``mert``. Weights are
local paths or Hugging Face repo ids already in the local cache: nothing is downloaded.
"""

from sepclean.embeddings.base import EmbeddingBackend, EmbeddingError, Framing, WeightsNotFoundError
from sepclean.embeddings.cache import Embedding, EmbeddingCache
from sepclean.embeddings.extract import content_key, embed_signals, embed_tracks
from sepclean.embeddings.registry import BACKENDS, DEFAULT
from sepclean.embeddings.registry import create as create_backend
from sepclean.embeddings.songs import DEFAULT_SILENCE_DB, SongEmbeddings, fill_unscored

__all__ = [
    "BACKENDS",
    "DEFAULT",
    "DEFAULT_SILENCE_DB",
    "Embedding",
    "EmbeddingBackend",
    "EmbeddingCache",
    "EmbeddingError",
    "Framing",
    "SongEmbeddings",
    "WeightsNotFoundError",
    "content_key",
    "create_backend",
    "embed_signals",
    "embed_tracks",
    "fill_unscored",
]
