"""The torchaudio compatibility module: why it exists, and that the toolkits' own datasets then work."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torchaudio

from sepclean import torchaudio_compat


@pytest.fixture
def without_compat():
    torchaudio_compat.uninstall()
    yield
    torchaudio_compat.install()


def test_the_tested_torchaudio_lacks_what_the_toolkits_call():
    # If this fails, torchaudio has its old API back and the compat module may be retired. Checked in
    # a fresh interpreter: the upstream train.py wrapper adds a no-op backend selector in-process.
    code = "import torchaudio; print(hasattr(torchaudio, 'info'), hasattr(torchaudio, 'get_audio_backend'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_toolkits_fail_without_it(tiny_data, without_compat):
    import demucs.wav
    import openunmix.data

    track = tiny_data.manifest("train").tracks[0]
    with pytest.raises(AttributeError):
        openunmix.data.load_info(track.path("vocals"))
    with pytest.raises(AttributeError):
        demucs.wav._track_metadata(track.folder, ["vocals", "bass", "drums", "other"])


def test_install_replaces_exactly_the_three_calls_and_is_reversible():
    import demucs.wav
    import openunmix.data

    torchaudio_compat.uninstall()
    originals = (openunmix.data.load_info, openunmix.data.load_audio, demucs.wav.ta)
    assert demucs.wav.ta is torchaudio
    torchaudio_compat.install()
    torchaudio_compat.install()  # idempotent
    assert openunmix.data.load_info is torchaudio_compat.openunmix_load_info
    assert openunmix.data.load_audio is torchaudio_compat.openunmix_load_audio
    assert demucs.wav.ta is torchaudio_compat.demucs_torchaudio
    assert sorted(vars(demucs.wav.ta)) == ["info", "load", "save"]
    torchaudio_compat.uninstall()
    assert (openunmix.data.load_info, openunmix.data.load_audio, demucs.wav.ta) == originals
    torchaudio_compat.install()


def test_openunmix_load_audio_excerpt(tiny_data):
    torchaudio_compat.install()
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
    torchaudio_compat.install()
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


def test_demucs_wavset_reads_generated_data(tiny_data, tmp_path):
    torchaudio_compat.install()
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
    torchaudio_compat.demucs_torchaudio.save(path, wav, 44100, encoding="PCM_F")
    back, rate = torchaudio_compat.demucs_torchaudio.load(path)
    assert rate == 44100
    torch.testing.assert_close(back, wav)


def test_backend_selection_is_opt_in_and_undone():
    torchaudio_compat.uninstall()
    torchaudio_compat.install()
    assert not hasattr(torchaudio, "set_audio_backend")
    torchaudio_compat.install(backend_selection=True)
    torchaudio.set_audio_backend("soundfile")  # what upstream scripts/train.py calls
    assert torchaudio.get_audio_backend() == "soundfile"
    torchaudio_compat.uninstall()
    assert not hasattr(torchaudio, "set_audio_backend") and not hasattr(torchaudio, "get_audio_backend")
    torchaudio_compat.install()
