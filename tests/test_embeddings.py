"""Embedding backends, chunking and batching, the cache, and loading weights offline.

The CLAP and MERT backends are exercised on real model classes with random weights, built here from
small configs and saved to folders, since nothing can be downloaded: transformers' ClapModel,
transformers' HubertModel in place of MERT (same architecture family, no remote code), and
laion-clap's own CLAP class saved as a state-dict checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import Payload, copy_splits, tree_state

from sepclean import audio
from sepclean.cli import main
from sepclean.embeddings import (
    EmbeddingBackend,
    EmbeddingCache,
    EmbeddingError,
    Framing,
    WeightsNotFoundError,
    content_key,
    create_backend,
    embed_signals,
    embed_tracks,
)
from sepclean.embeddings.extract import chunk_starts
from sepclean.manifest import Manifest, ManifestError
from sepclean.scan import scan
from sepclean.scores import ScoreTable

REPO = Path(__file__).resolve().parents[1]


class SampleAtFrameStart(EmbeddingBackend):
    """A transparent backend: each frame is the input sample at the frame's start, so that feeding
    ``arange(n)`` shows where every assembled frame came from."""

    name = "probe"

    def __init__(self, framing: Framing, sample_rate: int = 100):
        self.framing, self.sample_rate, self.dim, self.device = framing, sample_rate, 1, torch.device("cpu")
        self.calls = 0

    def config(self) -> dict:
        return {"framing": vars(self.framing)}

    def embed(self, chunks):
        self.calls += 1
        frames = 1 + max(0, chunks.shape[1] - self.framing.frame_span) // self.framing.frame_hop
        return chunks[:, : frames * self.framing.frame_hop : self.framing.frame_hop, None]


# --- chunking and assembly ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "framing",
    [
        Framing(chunk=100, chunk_hop=100, frame_hop=10, frame_span=10),  # MERT-like: disjoint chunks
        Framing(chunk=100, chunk_hop=10, frame_hop=10, frame_span=100),  # CLAP-like: a window per frame
        Framing(chunk=130, chunk_hop=100, frame_hop=10, frame_span=40),  # spectral: overlapping by span - hop
    ],
)
@pytest.mark.parametrize("length", [5, 100, 101, 250, 999])
def test_frames_come_in_time_order_without_duplicates(framing, length):
    backend = SampleAtFrameStart(framing)
    [(_, embedding)] = embed_signals(backend, [("song", np.arange(length, dtype=np.float32))], batch_size=3)
    starts = embedding.frames[:, 0]
    assert len(starts) == len(embedding.loudness) > 0
    assert starts[0] == 0 and np.all(np.diff(starts) >= framing.frame_hop)
    if length >= framing.chunk:  # chunks cover the song up to less than a chunk hop from its end
        assert starts[-1] + framing.frame_span > length - framing.chunk_hop


def test_chunk_starts():
    framing = Framing(chunk=100, chunk_hop=100, frame_hop=10, frame_span=10)
    assert chunk_starts(0, framing) == []
    assert chunk_starts(60, framing) == [0]
    assert chunk_starts(300, framing) == [0, 100, 200]
    assert chunk_starts(350, framing) == [0, 100, 200, 250]


def test_batching_across_songs_changes_nothing():
    backend = create_backend("spectral")
    rng = np.random.default_rng(0)
    signals = [(i, rng.normal(size=n).astype(np.float32) * 0.1) for i, n in enumerate([30000, 5000, 2_000_000, 70000])]
    alone = {key: e for signal in signals for key, e in embed_signals(backend, [signal], batch_size=1)}
    together = dict(embed_signals(backend, signals, batch_size=8))
    for key, embedding in alone.items():
        np.testing.assert_allclose(together[key].frames, embedding.frames, atol=1e-3)


def test_spectral_frames_and_silence():
    backend = create_backend("spectral")
    assert (backend.sample_rate, backend.dim) == (44100, 64)
    assert backend.frame_rate == pytest.approx(44100 / 1024)
    seconds = 70  # more than two 30 s chunks
    t = np.arange(seconds * 44100) / 44100
    signal = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    signal[: 10 * 44100] = 0  # ten silent seconds
    [(_, embedding)] = embed_signals(backend, [("song", signal)])
    assert embedding.frames.shape == (1 + (len(signal) - 2048) // 1024, 64)
    # chunked frames are the frames of the whole signal (up to float32 rounding, seen in dB far
    # below the sine's level)
    whole = backend.embed(torch.from_numpy(signal)[None])[0].numpy()
    audible = whole > whole.max() - 80
    np.testing.assert_allclose(embedding.frames[audible], whole[audible], atol=1e-3)
    silent = embedding.loudness <= -60
    assert silent.sum() == pytest.approx(10 * backend.frame_rate, abs=2)
    assert len(embedding.active(-60)) == (~silent).sum()
    peak = np.argmax(embedding.frames[-1])  # 440 Hz lands in one band
    assert embedding.frames[-1, peak] > embedding.frames[-1].mean() + 20


# --- the cache ---------------------------------------------------------------------------------


def test_cache_hit_and_invalidation_on_changed_audio(tiny_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_data.root / "train" / "song_0000", data / "song_0000")
    shutil.copytree(tiny_data.root / "train" / "song_0001", data / "song_0001")
    manifest, _ = scan([data], progress=False, workers=1)
    backend = SampleAtFrameStart(Framing(chunk=44100, chunk_hop=44100, frame_hop=441, frame_span=441), 44100)
    cache = EmbeddingCache(tmp_path / "cache")
    sources = ["vocals", "mixture"]

    assert embed_tracks(manifest, sources, backend, cache, progress=False) == 4
    calls = backend.calls
    assert embed_tracks(manifest, sources, backend, cache, progress=False) == 0  # all hits
    assert backend.calls == calls
    stored = cache.get(backend, content_key(manifest["song_0000"], "vocals"))
    assert stored.frames.dtype == np.float16 and len(stored.frames) == len(stored.loudness)

    vocals, rate = audio.read(data / "song_0000" / "vocals.wav")
    audio.write(data / "song_0000" / "vocals.wav", vocals * 0.5, rate)
    manifest, _ = scan([data], progress=False, workers=1)
    assert embed_tracks(manifest, sources, backend, cache, progress=False) == 1  # only the changed file
    changed = cache.get(backend, content_key(manifest["song_0000"], "vocals"))
    np.testing.assert_allclose(changed.frames, stored.frames.astype(np.float32) * 0.5, atol=1e-3)

    other = SampleAtFrameStart(Framing(chunk=44100, chunk_hop=44100, frame_hop=882, frame_span=882), 44100)
    assert cache.folder(other) != cache.folder(backend)  # another configuration, another entry
    assert json.loads((cache.folder(other) / "config.json").read_text())["backend"] == "probe"


def _score_fad(data, out, cache) -> list[str]:
    return ["score", "fad", "--train", str(data.manifests["train"]), "--reference", str(data.manifests["reference"]),
            "-o", str(out), "--cache", str(cache), "--stems", "vocals,bass", "--quiet"]


@pytest.fixture
def scored_copy(tiny_data, tmp_path):
    """A writable copy of the tiny train and reference splits, scored once by `score fad`."""
    data = copy_splits(tiny_data, tmp_path / "copy", "train", "reference")
    assert main(_score_fad(data, tmp_path / "first", tmp_path / "cache")) == 0
    return data


@pytest.mark.parametrize("cache", ["warm", "cold"])
def test_a_stem_rewritten_after_its_manifest_is_never_scored_from_the_old_audio(scored_copy, tmp_path, capsys,
                                                                                cache):
    stem = scored_copy.root / "train" / "song_0003" / "vocals.wav"
    other, rate = audio.read(scored_copy.root / "train" / "song_0005" / "vocals.wav")
    audio.write(stem, other, rate)  # the manifest still holds the old audio's hash
    before = tree_state(scored_copy.root, tmp_path / "first")
    cache_dir = tmp_path / ("cache" if cache == "warm" else "fresh-cache")
    assert main(_score_fad(scored_copy, tmp_path / "second", cache_dir)) == 2
    err = capsys.readouterr().err
    assert f"{stem} (song_0003, vocals) no longer holds the audio its manifest hashed" in err
    assert "sepclean manifest" in err and "Traceback" not in err
    assert not (tmp_path / "second").exists()
    assert tree_state(scored_copy.root, tmp_path / "first") == before


def test_a_touched_but_unchanged_file_is_rehashed_once_and_served(scored_copy, tmp_path):
    stem = scored_copy.root / "train" / "song_0003" / "vocals.wav"
    stem.write_bytes(stem.read_bytes())  # new mtime, same audio
    assert main(_score_fad(scored_copy, tmp_path / "second", tmp_path / "cache")) == 0
    assert ScoreTable.read(tmp_path / "second").scores == ScoreTable.read(tmp_path / "first").scores


@pytest.mark.parametrize("how", ["replaced", "rewritten in place"])
def test_a_file_changed_with_its_size_and_mtime_restored_is_hashed_again(tiny_data, tmp_path, how):
    data = copy_splits(tiny_data, tmp_path / "copy", "train")
    track = Manifest.load(data.manifests["train"])["song_0003"]
    cache = EmbeddingCache(tmp_path / "cache")
    cache.verify(track, "vocals")  # recorded: the file holds the manifest's audio
    stem = track.files("vocals")[0]
    before = stem.stat()
    samples, rate = audio.read(stem)
    if how == "replaced":
        audio.write(tmp_path / "new.wav", samples * 0.5, rate)
        os.replace(tmp_path / "new.wav", stem)
    else:
        audio.write(stem, samples * 0.5, rate)
    os.utime(stem, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (stem.stat().st_size, stem.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    with pytest.raises(ManifestError, match="no longer holds the audio its manifest hashed"):
        cache.verify(track, "vocals")


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_corrupt_cache_entry_is_reported_removed_and_recomputed(scored_copy, tmp_path, capsys, damage):
    manifest = Manifest.load(scored_copy.manifests["train"])
    backend = create_backend("spectral")
    entry = EmbeddingCache(tmp_path / "cache").path(backend, content_key(manifest["song_0002"], "bass"))
    content = entry.read_bytes()
    entry.write_bytes(content[: len(content) // 2] if damage == "truncate" else b"not an npz file")
    before = tree_state(scored_copy.root, tmp_path / "first")
    fresh = ["--store", str(tmp_path / "fresh-store")]  # not the table made before: the cache is read again
    with pytest.warns(UserWarning, match=f"corrupt embedding cache entry {entry}.*removed, recomputing it"):
        assert main(_score_fad(scored_copy, tmp_path / "second", tmp_path / "cache") + fresh) == 0
    assert entry.read_bytes() == content  # recomputed: the same embedding
    assert ScoreTable.read(tmp_path / "second").scores == ScoreTable.read(tmp_path / "first").scores
    assert tree_state(scored_copy.root, tmp_path / "first") == before


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.setenv("SEPCLEAN_CACHE", str(tmp_path / "mine"))
    assert EmbeddingCache().root == tmp_path / "mine"
    monkeypatch.delenv("SEPCLEAN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert EmbeddingCache().root == tmp_path / "xdg" / "sepclean"


# --- transformers CLAP -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clap_folder(tmp_path_factory) -> Path:
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    torch.manual_seed(0)
    config = ClapConfig(
        text_config=dict(
            vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=1, intermediate_size=16,
            max_position_embeddings=32,
        ),
        audio_config=dict(
            depths=[1, 1], num_attention_heads=[1, 2], hidden_size=32, patch_embeds_hidden_size=16, window_size=8,
        ),
        projection_dim=16,
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("clap")
    ClapModel(config).save_pretrained(folder)
    ClapFeatureExtractor().save_pretrained(folder)
    return folder


def test_transformers_clap(clap_folder):
    backend = create_backend("clap", weights=str(clap_folder), device="cpu")
    assert (backend.sample_rate, backend.dim, backend.frame_rate) == (48000, 16, 1.0)
    assert backend.config()["implementation"] == "transformers"
    rng = np.random.default_rng(0)
    signals = [("short", rng.normal(size=3 * 48000)), ("long", rng.normal(size=12 * 48000))]
    result = dict(embed_signals(backend, [(k, (0.1 * x).astype(np.float32)) for k, x in signals], batch_size=4))
    assert result["short"].frames.shape == (1, 16)  # one repeat-padded window
    assert result["long"].frames.shape == (3, 16)  # windows at 0, 1 and 2 s
    np.testing.assert_allclose(np.linalg.norm(result["long"].frames, axis=1), 1, atol=1e-5)
    again = dict(embed_signals(backend, [("long", (0.1 * signals[1][1]).astype(np.float32))]))
    np.testing.assert_allclose(again["long"].frames, result["long"].frames, atol=1e-5)  # deterministic


# --- MERT (a HuBERT-shaped stand-in) -----------------------------------------------------------


@pytest.fixture(scope="module")
def hubert_folder(tmp_path_factory) -> Path:
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    torch.manual_seed(0)
    config = HubertConfig(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, conv_dim=(8,) * 7,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("mert")
    HubertModel(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=24000, do_normalize=True).save_pretrained(folder)
    return folder


def test_mert_backend_on_a_hubert_folder(hubert_folder):
    backend = create_backend("mert", weights=str(hubert_folder), device="cpu")
    assert (backend.sample_rate, backend.dim, backend.frame_rate) == (24000, 16, 75.0)
    assert backend.config()["layer"] == 2  # the last of hidden states 0..2
    signal = (0.1 * np.random.default_rng(0).normal(size=25 * 24000)).astype(np.float32)
    [(_, last)] = embed_signals(backend, [("song", signal)])
    assert abs(len(last.frames) - 25 * 75) <= 3  # chunked at 10 s, about one frame lost per chunk
    first = create_backend("mert", weights=str(hubert_folder), layer=0, device="cpu")
    assert first.config() != backend.config()
    [(_, layer0)] = embed_signals(first, [("song", signal)])
    assert layer0.frames.shape == last.frames.shape and not np.allclose(layer0.frames, last.frames)
    with pytest.raises(EmbeddingError, match="out of range"):
        create_backend("mert", weights=str(hubert_folder), layer=3)


def test_weights_from_the_hugging_face_cache(hubert_folder, tmp_path, monkeypatch):
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--tiny-mert"
    shutil.copytree(hubert_folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    backend = create_backend("mert", weights="someone/tiny-mert", device="cpu")
    assert backend.config()["weights"] == f"hf:models--someone--tiny-mert@{commit}"


# --- LAION-CLAP through the laion-clap package -------------------------------------------------


@pytest.fixture(scope="module")
def laion_checkpoint(tmp_path_factory) -> Path:
    """laion-clap's CLAP with the HTSAT-tiny audio config and random weights, saved the way LAION's
    checkpoints are: a state dict under "state_dict", DDP "module." prefixes, text keys included."""
    from sepclean.embeddings.clap_laion import TEXT_TOWER, import_laion_clap

    laion_clap = import_laion_clap()
    from laion_clap.clap_module.model import CLAP

    config = json.loads((Path(laion_clap.__file__).parent / "clap_module/model_configs/HTSAT-tiny.json").read_text())
    torch.manual_seed(0)
    model = CLAP(embed_dim=config["embed_dim"], audio_cfg=config["audio_cfg"], text_cfg=TEXT_TOWER)
    path = tmp_path_factory.mktemp("laion") / "htsat-tiny.pt"
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    return path


def test_laion_clap_checkpoint(laion_checkpoint):
    backend = create_backend("clap", weights=str(laion_checkpoint), device="cpu")
    assert backend.config()["implementation"] == "laion_clap"
    assert backend.config()["amodel"] == "HTSAT-tiny" and not backend.config()["fusion"]
    assert (backend.sample_rate, backend.dim) == (48000, 512)
    signal = (0.1 * np.random.default_rng(0).normal(size=2 * 48000)).astype(np.float32)
    [(_, embedding)] = embed_signals(backend, [("song", signal)])
    assert embedding.frames.shape == (1, 512)
    assert np.linalg.norm(embedding.frames) == pytest.approx(1, abs=1e-5)


def test_laion_checkpoint_with_numpy_training_state_loads_weights_only(laion_checkpoint, tmp_path):
    # LAION's released checkpoints pickle training state as numpy scalars beside the weights.
    checkpoint = torch.load(laion_checkpoint, weights_only=True)
    path = tmp_path / "with-state.pt"
    torch.save({**checkpoint, "epoch": np.int64(45), "lr": np.float64(1e-4), "best": np.float32(0.5)}, path)
    backend = create_backend("clap", weights=str(path), device="cpu")
    assert backend.config()["amodel"] == "HTSAT-tiny"


def test_laion_checkpoint_with_a_payload_is_refused(laion_checkpoint, tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "planted.pt"
    torch.save({**torch.load(laion_checkpoint, weights_only=True), "note": Payload(marker)}, path)
    with pytest.raises(WeightsNotFoundError, match="refused to load: it names posix.system"):
        create_backend("clap", weights=str(path))
    assert not marker.exists()


def test_laion_checkpoint_of_the_wrong_kind(tmp_path):
    path = tmp_path / "not-clap.pt"
    torch.save({"state_dict": {"layer.weight": torch.zeros(2)}}, path)
    with pytest.raises(WeightsNotFoundError, match="not a LAION-CLAP"):
        create_backend("clap", weights=str(path))


# --- weights that are not there, and the network that must not be touched ----------------------


def test_missing_weights_errors(tmp_path, monkeypatch):
    from huggingface_hub import constants

    with pytest.raises(WeightsNotFoundError, match="no such file or folder"):
        create_backend("mert", weights=str(tmp_path / "nowhere"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    started = time.monotonic()
    with pytest.raises(WeightsNotFoundError) as error:
        create_backend("mert")
    assert "m-a-p/MERT-v1-95M" in str(error.value) and "hf download" in str(error.value)
    with pytest.raises(WeightsNotFoundError, match="laion/larger_clap_music"):
        create_backend("clap")
    assert time.monotonic() - started < 10
    with pytest.raises(WeightsNotFoundError, match="not a MERT"):
        create_backend("mert", weights=str(tmp_path))  # a folder, but no model in it
    with pytest.raises(EmbeddingError, match="unknown embedding"):
        create_backend("vggish")


class BlackHole:
    """A TCP server that accepts connections and never answers: a closed network that hangs."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.connections = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                self.connections.append(self.server.accept()[0])
            except OSError:
                return

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.getsockname()[1]}"

    def close(self):
        self.server.close()


@pytest.mark.parametrize(
    "code",
    [
        # laion_clap fetches three tokenizers at import
        "from sepclean.embeddings.clap_laion import import_laion_clap; import_laion_clap()",
        # a model missing from the cache is an error, not a download
        "from sepclean.embeddings import create_backend, WeightsNotFoundError\n"
        "try:\n    create_backend('mert')\nexcept WeightsNotFoundError as e:\n    print(e)",
    ],
    ids=["import-laion-clap", "missing-mert"],
)
def test_nothing_reaches_the_network_without_offline_mode(code, tmp_path):
    hole = BlackHole()
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT=hole.url, HF_HUB_ETAG_TIMEOUT="600")
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
        )
    finally:
        hole.close()
    assert done.returncode == 0, done.stderr[-2000:]
    assert not hole.connections, "the Hugging Face Hub was contacted"
