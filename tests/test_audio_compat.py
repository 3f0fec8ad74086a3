"""The toolkits' audio compatibility patches (one per plugin): why they exist, that the toolkits'
own datasets then work, and that sepclean's core imports no toolkit."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torchaudio

from sepclean_plugins.demucs import audio_compat as demucs_compat
from sepclean_plugins.openunmix import audio_compat as openunmix_compat


@pytest.fixture
def without_compat():
    openunmix_compat.uninstall()
    demucs_compat.uninstall()
    yield
    openunmix_compat.install()
    demucs_compat.install()


def test_the_tested_torchaudio_lacks_what_the_toolkits_call():
    # If this fails, torchaudio has its old API back and the compat modules may be retired. Checked in
    # a fresh interpreter: the upstream train.py wrapper adds a no-op backend selector in-process.
    code = "import torchaudio; print(hasattr(torchaudio, 'info'), hasattr(torchaudio, 'get_audio_backend'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_core_imports_no_toolkit():
    # The core talks to toolkits through their adapters only: importing every sepclean module (the
    # plugins excluded, and __main__, which runs the CLI) loads neither demucs nor openunmix.
    code = (
        "import importlib, pkgutil, sys, sepclean\n"
        "for m in pkgutil.walk_packages(sepclean.__path__, 'sepclean.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "print(sorted({n.split('.')[0] for n in sys.modules} & {'demucs', 'openunmix'}))\n"
        "print(len([n for n in sys.modules if n.startswith('sepclean.')]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    toolkits, imported = out.stdout.split("\n")[:2]
    assert toolkits == "[]" and int(imported) > 30


def test_toolkits_fail_without_them(tiny_data, without_compat):
    import demucs.wav
    import openunmix.data

    track = tiny_data.manifest("train").tracks[0]
    with pytest.raises(AttributeError):
        openunmix.data.load_info(track.path("vocals"))
    with pytest.raises(AttributeError):
        demucs.wav._track_metadata(track.folder, ["vocals", "bass", "drums", "other"])


def test_install_replaces_exactly_what_the_toolkits_call_and_is_reversible(without_compat):
    import demucs.wav
    import openunmix.cli
    import openunmix.data

    originals = (openunmix.data.load_info, openunmix.data.load_audio, openunmix.cli.torchaudio, demucs.wav.ta)
    assert demucs.wav.ta is torchaudio and openunmix.cli.torchaudio is torchaudio
    for _ in range(2):  # idempotent
        openunmix_compat.install()
        demucs_compat.install()
    assert openunmix.data.load_info is openunmix_compat.load_info
    assert openunmix.data.load_audio is openunmix_compat.load_audio
    assert sorted(vars(openunmix.cli.torchaudio)) == ["save", "set_audio_backend"]
    assert demucs.wav.ta is demucs_compat.demucs_torchaudio
    assert sorted(vars(demucs.wav.ta)) == ["info", "load", "save"]
    openunmix_compat.uninstall()
    demucs_compat.uninstall()
    assert (openunmix.data.load_info, openunmix.data.load_audio, openunmix.cli.torchaudio, demucs.wav.ta) == originals


def test_openunmix_load_audio_excerpt(tiny_data):
    openunmix_compat.install()
    import openunmix.data

    track = tiny_data.manifest("train").tracks[0]
    info = openunmix.data.load_info(track.path("bass"))
    assert info == {"samplerate": 44100, "samples": track.frames, "channels": 2, "duration": track.duration}
    excerpt, rate = openunmix.data.load_audio(track.path("bass"), start=0.5, dur=1.0)
    assert rate == 44100 and excerpt.dtype == torch.float32 and excerpt.shape == (2, 44100)
    np.testing.assert_array_equal(excerpt.numpy(), track.read("bass", start=22050, frames=44100))
    full, _ = openunmix.data.load_audio(track.path("bass"))
    assert full.shape == (2, track.frames)


def test_openunmix_dataset_class_reads_generated_data(tiny_data):
    openunmix_compat.install()
    from openunmix.data import FixedSourcesTrackFolderDataset

    dataset = FixedSourcesTrackFolderDataset(
        root=str(tiny_data.root),
        split="train",
        target_file="vocals.wav",
        interferer_files=["bass.wav", "drums.wav", "other.wav"],
        seq_duration=2.0,
        random_chunks=False,
    )
    assert len(dataset) == len(tiny_data.manifest("train"))
    x, y = dataset[0]
    track = tiny_data.manifest("train")[dataset.tracks[0]["path"].name]
    frames = 2 * 44100
    np.testing.assert_allclose(y.numpy(), track.read("vocals", frames=frames))
    np.testing.assert_allclose(x.numpy(), track.read("mixture", frames=frames), atol=1e-6)


def test_umx_save_writes_float_wav_and_other_formats(tmp_path):
    wav = torch.randn(2, 100) * 3  # beyond [-1, 1]: float files keep it
    openunmix_compat.save(tmp_path / "x.wav", wav, sample_rate=44100)
    back, rate = openunmix_compat.load_audio(tmp_path / "x.wav")
    assert rate == 44100
    torch.testing.assert_close(back, wav)
    openunmix_compat.save(tmp_path / "x.flac", wav.clamp(-1, 1), sample_rate=44100)
    assert openunmix_compat.load_info(tmp_path / "x.flac")["samples"] == 100


def test_demucs_wavset_reads_generated_data(tiny_data, tmp_path):
    demucs_compat.install()
    from demucs.wav import get_wav_datasets

    sources = ["drums", "bass", "other", "vocals"]
    args = SimpleNamespace(wav=str(tiny_data.root), metadata=str(tmp_path), sources=sources, segment=1.0,
                           shift=1.0, samplerate=44100, channels=2, normalize=False, full_cv=True)
    train, valid = get_wav_datasets(args)
    assert set(train.metadata) == set(tiny_data.manifest("train").ids)
    assert train.metadata["song_0000"]["length"] == tiny_data.manifest("train")["song_0000"].frames
    example = train[0]
    assert example.shape == (4, 2, 44100)
    track = tiny_data.manifest("train")[next(iter(train.metadata))]
    for i, source in enumerate(sources):
        np.testing.assert_array_equal(example[i].numpy(), track.read(source, frames=44100))
    # The validation set is read whole, with the mixture first.
    assert valid[0].shape == (5, 2, tiny_data.manifest("valid").tracks[0].frames)


def test_demucs_save_writes_float(tmp_path):
    path = tmp_path / "x.wav"
    wav = torch.randn(2, 100) * 3  # beyond [-1, 1]: float files keep it
    demucs_compat.demucs_torchaudio.save(path, wav, 44100, encoding="PCM_F")
    back, rate = demucs_compat.demucs_torchaudio.load(path)
    assert rate == 44100
    torch.testing.assert_close(back, wav)


def test_backend_selection_is_opt_in_and_undone(without_compat):
    openunmix_compat.install()
    assert not hasattr(torchaudio, "set_audio_backend")
    openunmix_compat.install(backend_selection=True)
    torchaudio.set_audio_backend("soundfile")  # what upstream scripts/train.py calls
    assert torchaudio.get_audio_backend() == "soundfile"
    openunmix_compat.uninstall()
    assert not hasattr(torchaudio, "set_audio_backend") and not hasattr(torchaudio, "get_audio_backend")
