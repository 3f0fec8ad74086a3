"""Embedding songs: read and resample each source, cut it into chunks, batch chunks across songs,
reassemble each song's frames with their loudness, and store them in the cache.

Only what the cache lacks is computed; identical audio (the same content hash) is embedded once.
Audio is read by a few threads ahead of the model.
"""

from __future__ import annotations

from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Hashable, Iterable, Iterator, Sequence, TypeVar

import numpy as np
import torch
import torchaudio.functional as AF
from tqdm import tqdm

from sepclean.embeddings.base import EmbeddingBackend, Framing
from sepclean.embeddings.cache import Embedding, EmbeddingCache
from sepclean.manifest import MIXTURE, Track, combine_hashes

T = TypeVar("T")
R = TypeVar("R")


def content_key(track: Track, source: str) -> str:
    """Identity of a source's audio: the manifest's hash, or for a summed mixture its stems' hashes."""
    if source in track.hashes:
        return track.hashes[source]
    if source == MIXTURE:
        return "sum:" + combine_hashes([f"{stem}:{track.hashes[stem]}" for stem in track.stems])
    raise KeyError(f"track {track.id!r} has no source {source!r}")


def load_mono(track: Track, source: str, sample_rate: int) -> np.ndarray:
    """A source downmixed to mono and resampled to ``sample_rate``, float32."""
    mono = track.read(source).mean(axis=0)
    if track.sample_rate != sample_rate:
        mono = AF.resample(torch.from_numpy(mono), track.sample_rate, sample_rate).numpy()
    return np.ascontiguousarray(mono, dtype=np.float32)


def chunk_starts(length: int, framing: Framing) -> list[int]:
    """Chunks every ``chunk_hop`` samples that fit, plus one as close to the end as the frame grid
    allows if audio is left (on the grid, its frames are those a whole-song pass would give)."""
    if length == 0:
        return []
    if length <= framing.chunk:
        return [0]
    starts = list(range(0, length - framing.chunk + 1, framing.chunk_hop))
    last = (length - framing.chunk) // framing.frame_hop * framing.frame_hop
    if last > starts[-1]:
        starts.append(last)
    return starts


def frame_loudness(audio: np.ndarray, starts: np.ndarray, span: int) -> np.ndarray:
    """RMS level in dBFS of ``audio[start:start + span]`` for each start."""
    energy = np.concatenate([[0.0], np.cumsum(np.square(audio, dtype=np.float64))])
    ends = np.minimum(starts + span, len(audio))
    power = (energy[ends] - energy[starts]) / np.maximum(ends - starts, 1)
    return (10 * np.log10(np.maximum(power, 0) + 1e-12)).astype(np.float32)


@dataclass
class _Song:
    key: Hashable
    audio: np.ndarray
    starts: list[int]
    outputs: list[np.ndarray | None] = field(default_factory=list)


def assemble(song: _Song, framing: Framing, dim: int) -> Embedding:
    """A song's frames in time order, the overlap of its end-aligned chunk removed."""
    frames, starts, next_start = [], [], 0
    for start, output in zip(song.starts, song.outputs):
        first = max(0, -(-(next_start - start) // framing.frame_hop))  # ceil division
        if first < len(output):
            frames.append(output[first:])
            starts.append(start + framing.frame_hop * np.arange(first, len(output)))
            next_start = starts[-1][-1] + framing.frame_hop
    if not frames:
        return Embedding(np.zeros((0, dim), np.float32), np.zeros(0, np.float32))
    starts = np.concatenate(starts)
    return Embedding(np.concatenate(frames), frame_loudness(song.audio, starts, framing.frame_span))


def embed_signals(
    backend: EmbeddingBackend, signals: Iterable[tuple[Hashable, np.ndarray]], batch_size: int = 8
) -> Iterator[tuple[Hashable, Embedding]]:
    """Embed mono signals at the backend's rate, batching chunks across consecutive songs."""
    group, pending = [], 0
    for key, audio in signals:
        group.append(_Song(key, audio, chunk_starts(len(audio), backend.framing)))
        pending += len(group[-1].starts)
        if pending >= batch_size:
            yield from _embed_group(backend, group, batch_size)
            group, pending = [], 0
    yield from _embed_group(backend, group, batch_size)


def _embed_group(
    backend: EmbeddingBackend, songs: list[_Song], batch_size: int
) -> Iterator[tuple[Hashable, Embedding]]:
    by_length = defaultdict(list)  # chunks of one batch must have the same length
    for song in songs:
        song.outputs = [None] * len(song.starts)
        for index, start in enumerate(song.starts):
            by_length[min(backend.framing.chunk, len(song.audio) - start)].append((song, index))
    for length, items in by_length.items():
        for batch in _batched(items, batch_size):
            chunks = np.stack([song.audio[song.starts[i] : song.starts[i] + length] for song, i in batch])
            outputs = backend.embed(torch.from_numpy(chunks)).numpy()
            for (song, index), output in zip(batch, outputs):
                song.outputs[index] = output
    for song in songs:
        yield song.key, assemble(song, backend.framing, backend.dim)


def embed_tracks(
    tracks: Iterable[Track],
    sources: Sequence[str],
    backend: EmbeddingBackend,
    cache: EmbeddingCache,
    batch_size: int = 8,
    workers: int = 2,
    progress: bool = True,
) -> int:
    """Make the cache hold every (track, source) embedding; returns how many were computed.

    Every source's files are first checked to still hold the audio the manifest hashed (see
    ``EmbeddingCache.verify``): an entry is never served for, nor computed from, other audio.
    """
    todo: dict[str, tuple[Track, str]] = {}
    for track in tracks:
        for source in sources:
            cache.verify(track, source)
            key = content_key(track, source)
            if key not in todo and (backend, key) not in cache:
                todo[key] = (track, source)
    if not todo:
        return 0

    def load(key: str) -> tuple[str, np.ndarray]:
        return key, load_mono(*todo[key], backend.sample_rate)

    signals = _prefetch(load, list(todo), depth=max(1, workers))
    with tqdm(total=len(todo), desc=f"{backend.name} embeddings", unit="source", disable=not progress) as bar:
        for key, embedding in embed_signals(backend, signals, batch_size):
            cache.put(backend, key, embedding)
            bar.update()
    return len(todo)


def _prefetch(fn: Callable[[T], R], items: Sequence[T], depth: int) -> Iterator[R]:
    """``map(fn, items)`` computed by ``depth`` threads, at most ``depth`` results ahead."""
    with ThreadPoolExecutor(depth) as pool:
        futures = deque()
        for item in items:
            futures.append(pool.submit(fn, item))
            if len(futures) > depth:
                yield futures.popleft().result()
        while futures:
            yield futures.popleft().result()


def _batched(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
