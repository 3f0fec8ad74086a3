"""MoisesDB as distributed: <root>/<provider>/<track id>/data.json beside one folder per stem type,
one file per instrument; grouped into vocals/bass/drums/other as moisesdb's mix_4_stems does."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
import soundfile as sf

from sepclean import audio
from sepclean.cli import main
from sepclean.manifest import MIXTURE, Manifest, ManifestError
from sepclean.render import render
from sepclean.scan import content_hash, scan
from sepclean.toolkit import ToolkitError

RATE = 44100
FRAMES = 3 * RATE
PROVIDER = "moisesdb_v0.1"


def _write_track(root, track_id: str, instruments: dict[str, list[str]], seed: int) -> dict[str, list[np.ndarray]]:
    """A MoisesDB track folder: per stem type, one WAV per instrument (named by a file id as MoisesDB
    names them) and a data.json shaped like MoisesDB's. Returns the audio per stem type."""
    rng = np.random.default_rng(seed)
    folder = root / PROVIDER / track_id
    stems, written = [], {}
    for kind, track_types in instruments.items():
        parts = []
        for track_type in track_types:
            file_id = str(uuid.UUID(int=int(rng.integers(1 << 62))))
            samples = (0.1 * rng.standard_normal((FRAMES, 2))).astype(np.float32)
            (folder / kind).mkdir(parents=True, exist_ok=True)
            sf.write(folder / kind / f"{file_id}.wav", samples, RATE, subtype="FLOAT")
            parts.append({"id": file_id, "trackType": track_type, "type": "audio/x-wav", "extension": "wav",
                          "has_bleed": False})
            written.setdefault(kind, []).append(samples.T)
        stems.append({"id": str(uuid.UUID(int=int(rng.integers(1 << 62)))), "stemName": kind, "tracks": parts})
    metadata = {"song": f"Song {seed}", "artist": "Artist", "genre": "rock", "stems": stems}
    (folder / "data.json").write_text(json.dumps(metadata, indent=2))
    return written


BAND = {
    "vocals": ["lead_female_singer", "background_vocals"],
    "bass": ["bass_guitar"],
    "drums": ["kick_drum", "snare_drum", "overheads"],
    "guitar": ["distorted_electric_guitar"],
    "piano": ["grand_piano"],
    "percussion": ["a-tonal_percussion"],
}
# Instrumental: no vocals, and bowed strings and wind, which also go to "other".
QUARTET = {
    "bass": ["contrabass_double_bass"],
    "drums": ["drum_machine"],
    "bowed_strings": ["violin_section", "cello_section"],
    "wind": ["brass"],
}


@pytest.fixture
def moisesdb(tmp_path):
    root = tmp_path / "moisesdb"
    audio_ = {"band": _write_track(root, "band", BAND, 1), "quartet": _write_track(root, "quartet", QUARTET, 2)}
    return root, audio_


def _sum(parts):
    return audio.mix(parts, 2, FRAMES)


def test_four_stems_grouped_as_mix_4_stems(moisesdb):
    root, written = moisesdb
    manifest, problems = scan([root], progress=False)
    assert not problems
    assert manifest.ids == ["band", "quartet"] and manifest.stems == ["vocals", "bass", "drums", "other"]
    band, quartet = manifest["band"], manifest["quartet"]
    assert band.mixture is None and (band.sample_rate, band.channels, band.frames) == (RATE, 2, FRAMES)
    # Every stem is recorded as the list of its files, relative to the root.
    assert len(band.stems["vocals"]) == 2
    assert all(p.startswith(f"{PROVIDER}/band/vocals/") for p in band.stems["vocals"])
    assert [len(band.stems[s]) for s in manifest.stems] == [2, 1, 3, 3]
    assert sorted(p.split("/")[2] for p in band.stems["other"]) == ["guitar", "percussion", "piano"]
    assert quartet.stems["vocals"] == [] and [len(quartet.stems[s]) for s in ("bass", "drums", "other")] == [1, 1, 3]
    assert band.summed_stems == manifest.stems

    # Reading sums the files; a stem the song lacks is silence; the mixture is the sum of all files.
    np.testing.assert_allclose(band.read("vocals"), written["band"]["vocals"][0] + written["band"]["vocals"][1],
                               atol=1e-7)
    other = written["band"]["guitar"] + written["band"]["piano"] + written["band"]["percussion"]
    np.testing.assert_allclose(band.read("other"), np.sum(other, axis=0), atol=1e-6)
    np.testing.assert_array_equal(band.read("bass"), written["band"]["bass"][0])
    np.testing.assert_array_equal(quartet.read("vocals"), np.zeros((2, FRAMES), np.float32))
    everything = [part for parts in written["band"].values() for part in parts]
    np.testing.assert_allclose(band.read(MIXTURE), np.sum(everything, axis=0), atol=1e-5)
    # An excerpt of a summed stem is the excerpt of the sum.
    np.testing.assert_array_equal(band.read("drums", start=1000, frames=5000), band.read("drums")[:, 1000:6000])
    assert band.read("drums", start=FRAMES - 10).shape == (2, 10)

    # A summed stem's hash is the hash of the summed samples, as if they were one file.
    assert band.hashes["drums"] != band.hashes["bass"]
    assert band.path("bass") == band.files("bass")[0]
    with pytest.raises(ManifestError, match="'vocals' is the sum of 2 files"):
        band.path("vocals")


def test_summed_stem_hash_is_the_hash_of_the_sum(moisesdb, tmp_path):
    root, _ = moisesdb
    band = scan([root], progress=False)[0]["band"]
    one_file = tmp_path / "drums.wav"
    audio.write(one_file, band.read("drums"), RATE)
    assert content_hash([one_file], RATE, 2, FRAMES) == band.hashes["drums"]
    assert content_hash(band.files("drums"), RATE, 2, FRAMES) == band.hashes["drums"]


def test_manifest_roundtrip_and_a_provider_folder_as_root(moisesdb, tmp_path):
    root, _ = moisesdb
    manifest, _ = scan([root], progress=False)
    manifest.write(tmp_path / "m.jsonl")
    loaded = Manifest.load(tmp_path / "m.jsonl")
    assert loaded.tracks == manifest.tracks and loaded.header["version"] == 2
    np.testing.assert_array_equal(loaded["band"].read("other"), manifest["band"].read("other"))
    provider, problems = scan([root / PROVIDER], progress=False)
    assert not problems and provider.hash == manifest.hash


def test_more_stems_group_like_mix_5_stems(moisesdb):
    root, _ = moisesdb
    manifest, problems = scan([root], stems=["vocals", "bass", "drums", "guitar", "other"], progress=False)
    assert not problems
    band = manifest["band"]
    assert [p.split("/")[2] for p in band.stems["guitar"]] == ["guitar"]
    assert sorted(p.split("/")[2] for p in band.stems["other"]) == ["percussion", "piano"]
    _, problems = scan([root], stems=["vocals", "keys"], progress=False)
    assert problems and all("MoisesDB has no stem type 'keys'" in p.message for p in problems)


def _only_problem(root, track_id):
    manifest, problems = scan([root], progress=False)
    assert track_id not in manifest and len(manifest) == 1
    (problem,) = problems
    assert problem.track == track_id
    return problem.message


def test_a_listed_file_that_is_missing(moisesdb):
    root, _ = moisesdb
    metadata = json.loads((root / PROVIDER / "band" / "data.json").read_text())
    missing = metadata["stems"][2]["tracks"][1]
    (root / PROVIDER / "band" / "drums" / f"{missing['id']}.wav").unlink()
    assert f"drums/{missing['id']}.wav, listed in data.json, is missing" in _only_problem(root, "band")


def test_a_file_listed_twice(moisesdb):
    root, _ = moisesdb
    path = root / PROVIDER / "band" / "data.json"
    metadata = json.loads(path.read_text())
    twice = metadata["stems"][0]["tracks"][0]
    metadata["stems"][0]["tracks"].append(twice)
    path.write_text(json.dumps(metadata))
    assert f"vocals/{twice['id']}.wav, listed in data.json, is listed twice" in _only_problem(root, "band")


def test_unknown_stem_type_and_malformed_metadata(moisesdb):
    root, _ = moisesdb
    path = root / PROVIDER / "quartet" / "data.json"
    metadata = json.loads(path.read_text())
    metadata["stems"][0]["stemName"] = "theremin"
    path.write_text(json.dumps(metadata))
    assert "unknown stem type 'theremin'" in _only_problem(root, "quartet")
    path.write_text(json.dumps({"song": "x"}))
    assert "not shaped like MoisesDB's" in _only_problem(root, "quartet")
    path.unlink()
    assert "no data.json" in _only_problem(root, "quartet")


def test_instrument_files_of_different_lengths(moisesdb):
    root, _ = moisesdb
    path = next((root / PROVIDER / "band" / "piano").iterdir())
    data, rate = audio.read(path)
    audio.write(path, data[:, :-7], rate)
    message = _only_problem(root, "band")
    assert "different lengths" in message and f"piano/{path.name} {FRAMES - 7}" in message


def test_dataset_is_never_modified(moisesdb, tmp_path):
    root, _ = moisesdb

    def state():
        return {p: (p.stat().st_mtime_ns, p.is_file() and audio.file_hash(p)) for p in root.rglob("*")}

    before = state()
    manifest, _ = scan([root], progress=False)
    render(manifest, tmp_path / "rendered", progress=False)
    assert state() == before


def test_render_writes_one_file_per_stem_with_the_same_hashes(moisesdb, tmp_path):
    root, _ = moisesdb
    manifest, _ = scan([root], progress=False)
    rendered = render(manifest, tmp_path / "rendered", progress=False)
    assert rendered.hash == manifest.hash and rendered.roots == [str(tmp_path / "rendered")]
    band = rendered["band"]
    assert band.stems == {s: f"band/{s}.wav" for s in manifest.stems} and not band.summed_stems
    for stem in manifest.stems:
        np.testing.assert_array_equal(band.read(stem), manifest["band"].read(stem))
    # Rendering again keeps what is there; a damaged file is written again.
    target = tmp_path / "rendered" / "band" / "vocals.wav"
    mtime = target.stat().st_mtime_ns
    render(manifest, tmp_path / "rendered", progress=False)
    assert target.stat().st_mtime_ns == mtime
    target.write_bytes(target.read_bytes()[:1000])
    again = render(manifest, tmp_path / "rendered", progress=False)
    np.testing.assert_array_equal(again["band"].read("vocals"), manifest["band"].read("vocals"))


def test_cli_manifest_and_render(moisesdb, tmp_path, capsys):
    root, _ = moisesdb
    out = tmp_path / "m.jsonl"
    assert main(["manifest", str(root), "-o", str(out)]) == 0
    assert "2 track(s) have stems summed from several files" in capsys.readouterr().out
    assert Manifest.load(out)["band"].summed_stems
    rendered = tmp_path / "r.jsonl"
    assert main(["manifest", str(root), "-o", str(rendered), "--render", str(tmp_path / "stems")]) == 0
    assert Manifest.load(rendered).hash == Manifest.load(out).hash
    assert (tmp_path / "stems" / "quartet" / "vocals.wav").is_file()


def test_version_1_manifests_still_load(tiny_data, tmp_path):
    lines = tiny_data.manifests["valid"].read_text().splitlines()
    header = json.loads(lines[0])
    old = tmp_path / "v1.jsonl"
    old.write_text("\n".join([json.dumps({**header, "version": 1}), *lines[1:]]) + "\n")
    assert Manifest.load(old).tracks == tiny_data.manifest("valid").tracks


def test_toolkit_datasets_refuse_summed_stems_and_read_rendered_ones(moisesdb, tmp_path):
    from sepclean_plugins.demucs import data as demucs_data
    from sepclean_plugins.openunmix import dataset as openunmix_dataset

    root, _ = moisesdb
    manifest, _ = scan([root], progress=False)
    with pytest.raises(ToolkitError, match="is the sum of .* Open-Unmix's track-folder dataset reads one file"):
        openunmix_dataset.build(manifest.tracks, "vocals", seq_duration=None, deterministic=True)
    with pytest.raises(ToolkitError, match="is the sum of .* demucs' Wavset reads one file"):
        demucs_data.wavset(manifest, ["drums", "bass", "other", "vocals"])

    rendered = render(manifest, tmp_path / "rendered", progress=False)
    unmix = openunmix_dataset.build(rendered.tracks, "vocals", seq_duration=None, deterministic=True)
    x, y = unmix[0]
    band = manifest["band"]
    np.testing.assert_allclose(y.numpy(), band.read("vocals"), atol=1e-6)
    np.testing.assert_allclose(x.numpy(), band.read(MIXTURE), atol=1e-5)
    sources = ["drums", "bass", "other", "vocals"]
    wavs = demucs_data.wavset(rendered, sources, segment=None, normalize=False)
    example = wavs[0]
    for i, stem in enumerate(sources):
        np.testing.assert_allclose(example[i].numpy(), band.read(stem), atol=1e-6)
