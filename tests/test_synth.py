"""Invariants of the synthetic dataset generator (sepclean.synth) on a few short songs."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from sepclean import STEMS, audio
from sepclean.cli import main
from sepclean.synth import (
    CLEAN_TWIN,
    PROFILES,
    SPLITS,
    generate_dataset,
    read_contamination,
    render_song,
)
from sepclean.synth.contamination import EFFECT_PARAMS, HEADROOM, HELDOUT_KINDS, KINDS, headroom_gain
from sepclean.synth.effects import NumpyEffects, apply_effect, freeverb_response

MINI = dataclasses.replace(PROFILES["tiny"], name="mini", train=6, valid=1, reference=2, test=1, duration=2.5)
SOURCES = ("mixture", *STEMS)


def load_track(folder: Path) -> dict[str, np.ndarray]:
    return {name: audio.read(folder / f"{name}.wav")[0] for name in SOURCES}


def tracks(root: Path, split: str) -> list[Path]:
    return sorted(p for p in (root / split).iterdir() if p.is_dir())


def audio_bits(root: Path) -> dict[str, bytes]:
    """Every file's samples, bit for bit (not the file bytes: libsndfile stamps float WAVs with the time)."""
    return {str(p.relative_to(root)): audio.read(p)[0].tobytes() for p in sorted(root.rglob("*.wav"))}


@pytest.fixture(scope="session")
def mixed23(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mixed23")
    generate_dataset(root, preset="mixed23", profile=MINI, seed=3, workers=2)
    return root


@pytest.fixture(scope="session")
def effects(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("effects")
    generate_dataset(root, preset="effects", profile=MINI, seed=5, workers=1)
    return root


@pytest.fixture(scope="session")
def heavy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("heavy")
    profile = dataclasses.replace(MINI, valid=1, reference=0, test=0)
    generate_dataset(root, preset="mixed23", profile=profile, seed=7, severity="heavy", contaminated_fraction=1.0)
    return root


@pytest.fixture(scope="session")
def heldout(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("heldout")
    generate_dataset(root, preset="heldout", profile=MINI, seed=11, workers=1)
    return root


@pytest.fixture(scope="session", params=["mixed23", "effects", "heavy", "heldout"])
def dataset(request) -> Path:
    return request.getfixturevalue(request.param)


def test_layout_and_format(dataset):
    profile = read_contamination(dataset)["profile"]
    for split in (*SPLITS, CLEAN_TWIN):
        assert len(tracks(dataset, split)) == profile["train" if split == CLEAN_TWIN else split]
    assert [t.name for t in tracks(dataset, "train")] == [t.name for t in tracks(dataset, CLEAN_TWIN)]
    names = [t.name for split in SPLITS for t in tracks(dataset, split)]
    assert len(set(names)) == len(names), "track names are unique across splits"
    info = audio.info(tracks(dataset, "valid")[0] / "vocals.wav")
    assert (info.sample_rate, info.channels, info.frames) == (44100, 2, int(MINI.duration * 44100))
    assert soundfile.info(str(tracks(dataset, "valid")[0] / "mixture.wav")).subtype == "FLOAT"


def test_mixture_is_the_exact_sum_of_the_stems(dataset):
    for split in (*SPLITS, CLEAN_TWIN):
        for track in tracks(dataset, split):
            sources = load_track(track)
            assert sources["mixture"].dtype == np.float32
            summed = sources["vocals"] + sources["bass"] + sources["drums"] + sources["other"]
            assert np.array_equal(sources["mixture"], summed), track


def test_no_clipping_and_every_stem_sounds(dataset):
    for split in (*SPLITS, CLEAN_TWIN):
        for track in tracks(dataset, split):
            sources = load_track(track)
            assert np.abs(sources["mixture"]).max() < 1.0, track
            rms_db = {n: 10 * np.log10(np.mean(sources[n] ** 2)) for n in SOURCES}
            assert -45 < rms_db["mixture"] < -6, (track, rms_db)
            if split != "train":  # label noise may legitimately empty a train stem
                assert all(rms_db[s] > -50 for s in STEMS), (track, rms_db)


def test_contamination_record_matches_the_audio(dataset):
    record = read_contamination(dataset)
    assert set(record["tracks"]) == {t.name for t in tracks(dataset, "train")}
    assert record["profile"]["train"] == MINI.train and record["seed"] in (3, 5, 7, 11)
    for name, entry in record["tracks"].items():
        noisy = load_track(dataset / "train" / name)
        clean = load_track(dataset / CLEAN_TWIN / name)
        differing = [s for s in STEMS if not np.array_equal(noisy[s], clean[s])]
        assert differing == entry["stems"], name
        assert entry["contaminated"] == bool(differing) == (entry["kind"] is not None)
        if not entry["contaminated"]:
            assert np.array_equal(noisy["mixture"], clean["mixture"])


def test_mixed23_has_label_noise_and_bleeding(mixed23):
    entries = read_contamination(mixed23)["tracks"].values()
    kinds = [e["kind"] for e in entries]
    assert kinds.count("label_noise") + kinds.count("bleeding") == round(0.5 * MINI.train)
    assert {"label_noise", "bleeding"} <= set(kinds)
    for entry in entries:
        params = entry["params"]
        if entry["kind"] == "label_noise":
            touched = {m["from"] for m in params["moves"]} | {m["to"] for m in params["moves"]}
            touched |= {s for pair in params["swaps"] for s in pair}
            assert set(entry["stems"]) <= touched and entry["stems"]
            for move in params["moves"]:
                assert move["part"] in entry["parts"][move["from"]]
        if entry["kind"] == "bleeding":
            assert entry["stems"] == sorted({leak["destination"] for leak in params["leaks"]}, key=STEMS.index)
            for leak in params["leaks"]:
                assert -20 <= leak["gain_db"] <= -6 and leak["source"] != leak["destination"]


def test_every_contaminated_stem_has_a_kind_the_diagnostics_name(heavy):
    from sepclean.detection import stem_kind

    for entry in read_contamination(heavy)["tracks"].values():
        for stem in STEMS:
            kind = stem_kind(entry, stem)
            assert (kind is None) == (stem not in entry["stems"])
            if kind is not None and entry["kind"] == "label_noise":
                swapped = any(stem in pair for pair in entry["params"]["swaps"])
                assert (kind == "swap") == swapped and kind in ("swap", "lost a part", "got a part", "lost+got")
            elif kind is not None:
                assert kind == entry["kind"]


def test_heavy_severity_is_heavier(heavy):
    entries = list(read_contamination(heavy)["tracks"].values())
    assert all(e["contaminated"] for e in entries)
    for entry in entries:
        if entry["kind"] == "label_noise":
            assert len(entry["params"]["moves"]) + len(entry["params"]["swaps"]) >= 2
        else:
            assert len(entry["params"]["leaks"]) >= 2
            assert all(-10 <= leak["gain_db"] <= -2 for leak in entry["params"]["leaks"])


def test_label_noise_keeps_the_mixture(mixed23):
    for name, entry in read_contamination(mixed23)["tracks"].items():
        if entry["kind"] == "label_noise":
            noisy = load_track(mixed23 / "train" / name)["mixture"]
            clean = load_track(mixed23 / CLEAN_TWIN / name)["mixture"]
            np.testing.assert_allclose(noisy, clean, atol=1e-6)


def test_effects_preset_has_every_effect(effects):
    entries = read_contamination(effects)["tracks"].values()
    kinds = [e["kind"] for e in entries]
    assert sorted(k for k in kinds if k) == ["distortion", "lowpass", "reverb"]
    reverb = next(e for e in entries if e["kind"] == "reverb")["params"]
    assert reverb == {"backend": "numpy", **EFFECT_PARAMS["reverb"]}
    paper = {"room_size": 0.8, "damping": 0.8, "wet_level": 0.5, "dry_level": 0.4, "width": 1.0}
    assert EFFECT_PARAMS["reverb"] == paper
    for name, entry in read_contamination(effects)["tracks"].items():
        if entry["kind"] and "headroom_gain_db" not in entry["params"]:
            noisy, clean = load_track(effects / "train" / name), load_track(effects / CLEAN_TWIN / name)
            for stem in entry["stems"]:  # loudness restored after the effect
                ratio = np.sqrt(np.mean(noisy[stem] ** 2) / np.mean(clean[stem] ** 2))
                assert ratio == pytest.approx(1.0, rel=1e-3), (name, stem)


def test_heldout_preset_has_its_own_kinds(heldout):
    assert not set(HELDOUT_KINDS) & set(KINDS), "the held-out family shares no kind with the tuned presets"
    record = read_contamination(heldout)
    kinds = sorted(e["kind"] for e in record["tracks"].values() if e["kind"])
    assert kinds == ["bitcrush", "codec", "wrong_song"]
    for name, entry in record["tracks"].items():
        noisy, clean = load_track(heldout / "train" / name), load_track(heldout / CLEAN_TWIN / name)
        if entry["kind"] == "wrong_song":
            assert entry["params"]["replaced"] == entry["stems"] and len(entry["stems"]) <= 3
        if entry["kind"] == "codec":
            spectrum = np.abs(np.fft.rfft(noisy[entry["stems"][0]], axis=-1)).sum(axis=0)
            above = np.fft.rfftfreq(noisy["vocals"].shape[-1], 1 / 44100) > entry["params"]["cutoff_hz"] + 500
            assert spectrum[above].sum() < 1e-3 * spectrum.sum(), name
        if entry["kind"] in ("bitcrush", "codec") and "headroom_gain_db" not in entry["params"]:
            for stem in entry["stems"]:
                ratio = np.sqrt(np.mean(noisy[stem] ** 2) / np.mean(clean[stem] ** 2))
                assert ratio == pytest.approx(1.0, rel=1e-3), (name, stem)


def test_same_seed_same_audio_whatever_the_workers(mixed23, tmp_path):
    generate_dataset(tmp_path, preset="mixed23", profile=MINI, seed=3, workers=1)
    assert audio_bits(tmp_path) == audio_bits(mixed23)
    assert read_contamination(tmp_path)["tracks"] == read_contamination(mixed23)["tracks"]


def test_seed_changes_the_audio():
    songs = [render_song(np.random.default_rng(seed), 2.0, 44100) for seed in (0, 0, 1)]
    same, again, other = (s.stems() for s in songs)
    assert all(np.array_equal(same[s], again[s]) for s in STEMS)
    assert not any(np.array_equal(same[s], other[s]) for s in STEMS)


def test_contaminated_fraction_override(tmp_path):
    profile = dataclasses.replace(MINI, train=4, valid=0, reference=0, test=0, duration=1.5)
    summary = generate_dataset(tmp_path, preset="effects", profile=profile, contaminated_fraction=1.0, workers=1)
    entries = read_contamination(tmp_path)["tracks"].values()
    assert all(e["contaminated"] and e["stems"] for e in entries)
    assert sum(summary.kinds.values()) == 4 and set(summary.kinds) == {"distortion", "reverb", "lowpass"}
    summary = generate_dataset(tmp_path, preset="mixed23", profile=profile, contaminated_fraction=0.0, overwrite=True)
    assert summary.kinds == {} and not any(e["contaminated"] for e in read_contamination(tmp_path)["tracks"].values())


def test_clean_preset_train_is_its_twin(tmp_path):
    profile = dataclasses.replace(MINI, train=2, valid=0, reference=0, test=0, duration=1.5)
    summary = generate_dataset(tmp_path, preset="clean", profile=profile, workers=1)
    assert summary.kinds == {} and summary.tracks["train"] == 2
    bits = audio_bits(tmp_path)
    twins = [(name, name.replace("train/", f"{CLEAN_TWIN}/", 1)) for name in bits if name.startswith("train/")]
    assert twins and all(bits[noisy] == bits[clean] for noisy, clean in twins)
    with pytest.raises(ValueError, match="no contamination"):
        generate_dataset(tmp_path, preset="clean", profile=profile, contaminated_fraction=0.5, overwrite=True)


def test_stems_share_the_beat_grid():
    """Bass notes follow the kick: their onset envelopes correlate within a song, not across songs."""

    def onsets(stem: np.ndarray, hop: int = 441) -> np.ndarray:
        energy = np.sqrt(np.mean(stem.mean(0)[: len(stem[0]) // hop * hop].reshape(-1, hop) ** 2, axis=1))
        flux = np.maximum(np.diff(np.log(energy + 1e-4)), 0)
        return (flux - flux.mean()) / (flux.std() + 1e-12)

    songs = [render_song(np.random.default_rng(seed), 8.0, 44100).stems() for seed in (10, 11, 12)]
    within = [np.mean(onsets(s["bass"]) * onsets(s["drums"])) for s in songs]
    across = [np.mean(onsets(a["bass"]) * onsets(b["drums"])) for a, b in zip(songs, songs[1:] + songs[:1])]
    assert min(within) > 0.2, within
    assert min(within) > max(across), (within, across)


def test_song_parts_sum_to_stems_and_are_named():
    song = render_song(np.random.default_rng(4), 2.0, 44100)
    assert {p.stem for p in song.parts.values()} == set(STEMS)
    assert "lead_vocal" in song.parts_of("vocals") and "kick" in song.parts_of("drums")
    stems = song.stems()
    for stem in STEMS:
        np.testing.assert_allclose(stems[stem], sum(song.parts[p].audio for p in song.parts_of(stem)))


def test_headroom_turns_down_only_the_changed_stems():
    ones = np.ones((2, 10))
    stems = {"vocals": 0.6 * ones, "bass": 0.5 * ones, "drums": -0.2 * ones, "other": 0.3 * ones}
    gain = headroom_gain(stems, ["bass", "other"])
    assert 0 < gain < 1
    assert abs(0.6 - 0.2 + gain * (0.5 + 0.3)) <= HEADROOM
    assert headroom_gain({**stems, "other": 0 * ones}, ["bass"]) == 1.0  # peak 0.9: nothing to do


def test_numpy_effects_restore_loudness():
    rng = np.random.default_rng(0)
    x = 0.1 * rng.standard_normal((2, 44100))
    backend = NumpyEffects()
    for effect, params in [
        ("distortion", {"drive_db": 25.0}),
        ("lowpass", {"cutoff_hz": 3000.0}),
        ("reverb", {"room_size": 0.8, "damping": 0.8, "wet_level": 0.5, "dry_level": 0.4, "width": 1.0}),
    ]:
        y = apply_effect(backend, effect, x, 44100, params)
        assert np.sqrt(np.mean(y**2)) == pytest.approx(np.sqrt(np.mean(x**2)), rel=1e-9)
        assert not np.allclose(x, y)


def test_reverb_tail_decays_like_freeverb():
    """Room 0.8: comb feedback 0.924 every ~1400 samples, about -21 dB a second."""
    response = freeverb_response(0.8, 0.8, 44100)[0]
    energy = np.cumsum(response[::-1] ** 2)[::-1]
    decay_db = 10 * np.log10(energy[44100] / energy[2 * 44100])
    assert 15 < decay_db < 30


def test_cli_generates_and_refuses_a_non_empty_directory(tmp_path, capsys):
    out = tmp_path / "data"
    assert main(["synth", str(out), "--profile", "tiny", "--preset", "effects", "--seed", "1", "--workers", "2"]) == 0
    printed = capsys.readouterr().out
    assert "x real time per worker" in printed and "train 8" in printed
    assert len(tracks(out, "train")) == PROFILES["tiny"].train
    assert json.loads((out / "contamination.json").read_text())["preset"] == "effects"
    assert main(["synth", str(out), "--profile", "tiny"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["synth", str(out), "--contaminated-fraction", "1.5", "--overwrite"]) == 2


@pytest.mark.skipif(importlib.util.find_spec("pedalboard") is not None, reason="pedalboard is installed")
def test_pedalboard_backend_missing_is_a_clear_error(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "x"), "--preset", "effects", "--effects-backend", "pedalboard"]) == 2
    assert "pedalboard" in capsys.readouterr().err
    assert not (tmp_path / "x").exists(), "nothing is written before the backend is checked"


def test_a_full_disk_is_one_line_naming_the_file(tmp_path):
    """libsndfile reports a full disk as "System error" (a LibsndfileError traceback before)."""
    import subprocess
    import sys

    from conftest import full_disk

    out = tmp_path / "full"
    done = full_disk(out, [sys.executable, "-m", "sepclean", "synth", str(out / "synth"), "--profile", "tiny"])
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.startswith(f"sepclean synth: error: cannot write {out / 'synth'}/") and \
        done.stderr.endswith(".wav: No space left on device\n") and done.stderr.count("\n") == 1, done.stderr
