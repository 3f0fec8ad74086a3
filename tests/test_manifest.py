"""Manifests: building from the three dataset layouts, and one test per validation problem."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import tree_state

from sepclean import audio
from sepclean.cli import main
from sepclean.manifest import MIXTURE, Manifest, ManifestError
from sepclean.scan import ScanError, scan


@pytest.fixture
def train_copy(tiny_data, tmp_path):
    """A writable copy of the tiny train split, for planting defects."""
    root = tmp_path / "train"
    shutil.copytree(tiny_data.root / "train", root)
    return root


def _problem_for(root, track):
    manifest, problems = scan([root], progress=False)
    assert track not in manifest, "a track with a problem must be skipped"
    assert len(manifest) == len(list(root.iterdir())) - 1, "only the broken track is skipped"
    (problem,) = [p for p in problems if p.track == track]
    return problem.message


def test_musdb18hq_layout(tiny_data):
    manifest = tiny_data.manifest("train")
    assert manifest.ids == sorted(p.name for p in (tiny_data.root / "train").iterdir())
    track = manifest.tracks[0]
    assert track.mixture == f"{track.id}/mixture.wav"
    assert set(track.stems) == {"vocals", "bass", "drums", "other"}
    assert (track.sample_rate, track.channels) == (44100, 2)
    data, _ = audio.read(track.path("vocals"))
    np.testing.assert_array_equal(track.read("vocals"), data)
    assert track.frames == data.shape[1]
    assert set(track.hashes) == {MIXTURE, "vocals", "bass", "drums", "other"}


def test_roundtrip_and_hash_is_location_independent(tiny_data, tmp_path):
    manifest = tiny_data.manifest("reference")
    moved = tmp_path / "moved"
    shutil.copytree(tiny_data.root / "reference", moved)
    again, problems = scan([moved], progress=False)
    assert not problems
    assert again.hash == manifest.hash
    assert again.tracks[0].root != manifest.tracks[0].root
    again.write(tmp_path / "m.jsonl")
    loaded = Manifest.load(tmp_path / "m.jsonl")
    assert loaded.tracks == again.tracks
    assert loaded.header["hash"] == again.hash


def test_hash_changes_with_content(train_copy):
    before, _ = scan([train_copy], progress=False)
    track = before.tracks[0]
    data = track.read("bass")
    audio.write(track.path("bass"), data * 0.5, track.sample_rate)
    after, _ = scan([train_copy], progress=False)
    assert after[track.id].hashes["bass"] != track.hashes["bass"]
    assert after[track.id].hashes["drums"] == track.hashes["drums"]
    assert after.hash != before.hash


def test_stems_only_layout_sums_the_mixture(train_copy):
    for mixture in train_copy.glob("*/mixture.wav"):
        mixture.unlink()
    manifest, problems = scan([train_copy], progress=False)
    assert not problems
    track = manifest.tracks[0]
    assert track.mixture is None and MIXTURE not in track.hashes
    expected = sum(track.read(s) for s in ("vocals", "bass", "drums", "other"))
    np.testing.assert_allclose(track.read(MIXTURE), expected, atol=1e-6)


def test_musdb_stem_mp4_through_musdb(tiny_data, tmp_path):
    import stempeg

    source = tiny_data.manifest("test").tracks[0]
    order = ["mixture", "drums", "bass", "other", "vocals"]  # musdb's stream order
    streams = np.stack([source.read(name).T for name in order])
    root = tmp_path / "musdb" / "test"
    root.mkdir(parents=True)
    stempeg.write_stems(str(root / "Artist - Song.stem.mp4"), streams, sample_rate=44100,
                        writer=stempeg.StreamsWriter(codec="aac"))
    manifest, problems = scan([root], progress=False)
    assert not problems
    (track,) = manifest.tracks
    assert track.id == "Artist - Song" and track.streams["vocals"] == 4
    vocals = track.read("vocals")
    assert vocals.shape[0] == 2 and vocals.shape[1] >= source.frames
    # AAC is lossy; the decoded stream must still be the vocals, not another stream.
    n = source.frames
    corr = np.corrcoef(vocals[0, 2048:n - 2048], source.read("vocals")[0, 2048:n - 2048])
    assert abs(corr[0, 1]) > 0.5


def test_missing_stem(train_copy):
    (train_copy / "song_0002" / "vocals.wav").unlink()
    assert "missing stem 'vocals'" in _problem_for(train_copy, "song_0002")


def test_corrupt_file(train_copy):
    (train_copy / "song_0003" / "bass.wav").write_bytes(b"RIFF\x00\x00not really a wave file")
    assert "bass.wav is unreadable or corrupt" in _problem_for(train_copy, "song_0003")


def test_different_lengths(train_copy):
    path = train_copy / "song_0001" / "drums.wav"
    data, rate = audio.read(path)
    audio.write(path, data[:, :-100], rate)
    message = _problem_for(train_copy, "song_0001")
    assert "different lengths" in message and "drums" in message


def test_different_sample_rates(train_copy):
    path = train_copy / "song_0004" / "other.wav"
    data, _ = audio.read(path)
    audio.write(path, data, 48000)
    assert "different sample rates" in _problem_for(train_copy, "song_0004")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_samples(train_copy, bad):
    path = train_copy / "song_0005" / "vocals.wav"
    data, rate = audio.read(path)
    data[1, 1000] = bad
    audio.write(path, data, rate)
    assert "vocals.wav has NaN or Inf samples" in _problem_for(train_copy, "song_0005")


def test_track_without_audio(train_copy, tmp_path, capsys):
    for path in (train_copy / "song_0006").iterdir():
        audio.write(path, np.zeros((2, 0), np.float32), 44100)  # every file: 0 frames
    assert "no audio: its files hold 0 frames" in _problem_for(train_copy, "song_0006")
    before = tree_state(train_copy)
    assert main(["manifest", str(train_copy), "-o", str(tmp_path / "m.jsonl"), "--strict"]) == 2
    assert "song_0006: no audio" in capsys.readouterr().err and not (tmp_path / "m.jsonl").exists()
    assert tree_state(train_copy) == before


def test_duplicate_ids(tiny_data, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(tiny_data.root / "reference", a)
    b.mkdir()
    shutil.copytree(a / "ref_0001", b / "ref_0001")
    manifest, problems = scan([a, b], progress=False)
    assert len(manifest) == len(list(a.iterdir()))
    (problem,) = problems
    assert problem.track == "ref_0001" and "duplicate track id" in problem.message and str(a) in problem.message


def test_empty_and_missing_roots(tmp_path):
    (tmp_path / "empty").mkdir()
    manifest, problems = scan([tmp_path / "empty", tmp_path / "nowhere"], progress=False)
    assert len(manifest) == 0
    assert [p.message.split(":")[0] for p in problems] == ["empty root", "no such directory"]


def test_strict_stops_at_first_problem(train_copy):
    (train_copy / "song_0002" / "vocals.wav").unlink()
    with pytest.raises(ScanError, match="song_0002: missing stem"):
        scan([train_copy], strict=True, progress=False)


def test_dataset_is_never_modified(train_copy):
    (train_copy / "song_0002" / "vocals.wav").unlink()

    def state():
        return {p: (p.stat().st_mtime_ns, p.is_file() and audio.file_hash(p)) for p in train_copy.rglob("*")}

    before = state()
    scan([train_copy], progress=False)
    assert state() == before


def test_cli_reports_every_problem_and_exits_nonzero(train_copy, tmp_path, capsys):
    (train_copy / "song_0002" / "vocals.wav").unlink()
    (train_copy / "song_0003" / "bass.wav").write_bytes(b"junk")
    out = tmp_path / "m.jsonl"
    assert main(["manifest", str(train_copy), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "skipped 2 problem(s)" in err and "song_0002" in err and "song_0003" in err
    manifest = Manifest.load(out)
    assert len(manifest) == 6 and "song_0002" not in manifest


def test_cli_strict_writes_nothing(train_copy, tmp_path, capsys):
    (train_copy / "song_0002" / "vocals.wav").unlink()
    out = tmp_path / "m.jsonl"
    assert main(["manifest", str(train_copy), "-o", str(out), "--strict"]) == 2
    assert not out.exists()
    assert "missing stem" in capsys.readouterr().err


def test_cli_clean_dataset(tiny_data, tmp_path, capsys):
    out = tmp_path / "m.jsonl"
    assert main(["manifest", str(tiny_data.root / "valid"), str(tiny_data.root / "test"), "-o", str(out)]) == 0
    assert len(Manifest.load(out)) == 4
    assert "4 tracks" in capsys.readouterr().out


@pytest.mark.parametrize(
    "content, message",
    [("", "not a sepclean manifest"), ('{"format": "sepclean.manifest", "version": 99}', "version 99"),
     ("not json", "not JSONL")],
)
def test_load_rejects_non_manifests(tmp_path, content, message):
    path = tmp_path / "m.jsonl"
    path.write_text(content)
    with pytest.raises(ManifestError, match=message):
        Manifest.load(path)


def test_manifest_header_is_versioned(tiny_data):
    header = json.loads(tiny_data.manifests["valid"].read_text().splitlines()[0])
    assert header["format"] == "sepclean.manifest" and header["version"] == 2 and header["tracks"] == 2


def test_hash_is_of_the_audio_not_the_file_bytes(train_copy):
    before, _ = scan([train_copy], progress=False)
    track = before.tracks[0]
    bytes_before = audio.file_hash(track.path("vocals"))
    audio.write(track.path("vocals"), track.read("vocals"), track.sample_rate, subtype="DOUBLE")
    assert audio.file_hash(track.path("vocals")) != bytes_before
    after, _ = scan([train_copy], progress=False)
    assert after[track.id].hashes == track.hashes


def test_binary_file_is_not_a_manifest(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ManifestError, match="not JSONL"):
        Manifest.load(path)
