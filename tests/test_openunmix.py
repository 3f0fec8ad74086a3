"""The Open-Unmix adapter and training script on the tiny synthetic dataset (seconds per run)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import openunmix.data
import openunmix.utils
import pytest
import torch
from conftest import Payload, full_disk, read_only, tree_state

from sepclean import STEMS, toolkit
from sepclean.clean_manifest import CleanManifest
from sepclean.toolkit import ToolkitError
from openunmix.transforms import ComplexNorm, make_filterbanks

from sepclean_plugins.openunmix import OpenUnmixToolkit, checkpoint, clean, run_upstream
from sepclean_plugins.openunmix.spectrogram import StftConfig, attach
from sepclean_plugins.openunmix.train import RunningMoments, Training, main as train_main

TINY = ["--preset", "tiny", "--hidden-size", "16", "--quiet"]


def manifest_argv(data, output, *extra, target="vocals", epochs=2) -> list[str]:
    return ["--manifest", str(data.manifests["train"]), "--valid-manifest", str(data.manifests["valid"]),
            "--target", target, "--epochs", str(epochs), "--output", str(output), *TINY, *extra]


def write_clean(path: Path, keep, manifest=None, dataset_hash=None) -> Path:
    CleanManifest(keep=keep, dataset_hash=dataset_hash or (manifest.hash if manifest else None)).write(path)
    return path


@contextlib.contextmanager
def recording_reads():
    """Folders whose audio openunmix.data reads while the block runs."""
    folders: set[str] = set()
    read = openunmix.data.load_audio

    def spy(path, *args, **kwargs):
        folders.add(Path(path).parent.name)
        return read(path, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(openunmix.data, "load_audio", spy)
        yield folders


@pytest.fixture(scope="module")
def adapter() -> OpenUnmixToolkit:
    return OpenUnmixToolkit()


@pytest.fixture(scope="module")
def train_manifest(tiny_data):
    return tiny_data.manifest("train")


@pytest.fixture(scope="module")
def kept(train_manifest) -> list[str]:
    return [i for n, i in enumerate(train_manifest.ids) if n not in (1, 4)]


@pytest.fixture(scope="module")
def dirty_run(tiny_data, tmp_path_factory):
    output = tmp_path_factory.mktemp("umx_dirty")
    training = Training.from_argv(manifest_argv(tiny_data, output))
    with recording_reads() as folders:
        history = training.run()
    return training, output, history, folders


@pytest.fixture(scope="module")
def clean_run(tiny_data, train_manifest, kept, tmp_path_factory):
    output = tmp_path_factory.mktemp("umx_clean")
    clean_path = write_clean(output.parent / "clean.json", kept, train_manifest)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        training = Training.from_argv(manifest_argv(tiny_data, output, "--clean-manifest", str(clean_path)))
        with recording_reads() as folders:
            history = training.run()
    return training, output, history, folders, stdout.getvalue()


# --- the adapter ---------------------------------------------------------------------------------

def test_registered_with_one_unit_per_target(adapter):
    assert isinstance(toolkit.get("openunmix"), OpenUnmixToolkit)
    assert adapter.joint is False
    assert adapter.units() == list(STEMS)
    assert adapter.units(["bass"]) == ["bass"]
    assert all(adapter.unit_targets(t) == [t] for t in STEMS)


def test_deterministic_dataset_is_the_manifest_tracks_mixed_from_their_stems(adapter, train_manifest):
    dataset = adapter.dataset(train_manifest, "drums", deterministic=True, segment=1.5)
    assert isinstance(dataset, openunmix.data.FixedSourcesTrackFolderDataset)
    assert adapter.dataset_tracks(dataset) == train_manifest.ids
    track = train_manifest.tracks[3]
    assert adapter.examples(dataset, track.id) == [3]
    x, y = dataset[3]
    frames = int(1.5 * track.sample_rate)
    np.testing.assert_allclose(y.numpy(), track.read("drums", 0, frames))
    np.testing.assert_allclose(x.numpy(), sum(track.read(s, 0, frames) for s in STEMS), atol=1e-6)
    again, _ = dataset[3]
    assert torch.equal(x, again)
    whole, _ = adapter.dataset(train_manifest, "drums", deterministic=True)[0]
    assert whole.shape[-1] == train_manifest.tracks[0].frames


def test_training_dataset_draws_random_excerpts(adapter, train_manifest):
    dataset = adapter.dataset(train_manifest, "vocals", segment=1.0, augmentations=["gain", "channelswap"])
    assert dataset.random_chunks and dataset[0][0].shape[-1] == train_manifest.tracks[0].sample_rate
    assert not torch.equal(dataset[0][1], dataset[0][1])


@pytest.mark.parametrize("mode", ["unified", "per-target"])
def test_clean_manifest_filters_the_dataset_object(adapter, train_manifest, kept, mode):
    ids = train_manifest.ids
    keep = kept if mode == "unified" else {"vocals": kept, "bass": ids[:3], "drums": ids, "other": ids[5:]}
    clean_manifest = CleanManifest(keep=keep, dataset_hash=train_manifest.hash)

    def tracks(target):
        return adapter.dataset_tracks(adapter.dataset(train_manifest, target, clean=clean_manifest, segment=2.0))

    assert tracks("vocals") == kept
    assert tracks("bass") == (kept if mode == "unified" else ids[:3])


def test_too_short_tracks_are_left_out_as_upstream_does(adapter, train_manifest):
    duration = train_manifest.tracks[0].duration
    dataset = adapter.dataset(train_manifest, "vocals", segment=duration - 0.5)
    assert len(dataset) == len(train_manifest) and not dataset.too_short
    with pytest.raises(ToolkitError, match="too short"):
        adapter.dataset(train_manifest, "vocals", segment=duration)


def test_loss_is_the_training_loss_per_example(adapter, dirty_run, train_manifest):
    _, output, _, _ = dirty_run
    model = adapter.load(output, "vocals")
    dataset = adapter.dataset(train_manifest, "vocals", deterministic=True, segment=1.0)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(3)])
    losses = adapter.loss("vocals", model, batch)
    assert losses.shape == (3, 1)
    stft, _ = make_filterbanks(n_fft=model.stft.nfft, n_hop=model.stft.nhop)  # as scripts/train.py builds it
    encoder = torch.nn.Sequential(stft, ComplexNorm(mono=False))
    x, y = batch
    with torch.no_grad():
        expected = torch.nn.functional.mse_loss(model(encoder(x)), encoder(y))
    assert losses.mean().item() == pytest.approx(expected.item(), rel=1e-5)
    single = adapter.loss("vocals", model, torch.utils.data.default_collate([dataset[1]]))
    assert single.item() == pytest.approx(losses[1].item(), rel=1e-5)  # eval mode: examples independent


def test_separate_returns_every_target_at_the_mixture_shape(adapter, tiny_data):
    track = tiny_data.manifest("test").tracks[0]
    mixture = track.read("mixture")
    model = checkpoint.build_model({"nfft": 1024, "nb_channels": 2, "hidden_size": 8}, max_bin=300)
    models = {"vocals": attach(model.eval(), StftConfig(nfft=1024, nhop=512))}
    estimates = adapter.separate(models, mixture, track.sample_rate)
    assert set(estimates) == {"vocals"} and estimates["vocals"].shape == mixture.shape
    assert adapter.separate(models, mixture[:1], track.sample_rate)["vocals"].shape == mixture[:1].shape
    with pytest.raises(ToolkitError, match="resample"):
        adapter.separate(models, mixture, 22050)


# --- training ------------------------------------------------------------------------------------

def test_training_writes_what_open_unmix_loads(dirty_run, train_manifest, adapter):
    training, output, history, folders = dirty_run
    assert {p.name for p in output.iterdir()} >= {"vocals.pth", "vocals.chkpnt", "vocals.json", "separator.json"}
    assert history["epochs_trained"] == 2 and len(history["valid_loss_history"]) == 2
    assert adapter.dataset_tracks(training.train_dataset) == train_manifest.ids
    assert history["sepclean"]["train_tracks"] == train_manifest.ids
    separator = openunmix.utils.load_separator(str(output), targets=["vocals"], niter=0)
    estimate = separator(torch.zeros(1, 2, 44100))
    assert estimate.shape == (1, 1, 2, 44100)
    assert adapter.load(output, "vocals").stft.nfft == 1024


def test_training_with_a_clean_manifest_sees_exactly_the_kept_tracks(
    clean_run, adapter, kept, train_manifest, tiny_data
):
    training, _, history, folders, stdout = clean_run
    assert adapter.dataset_tracks(training.train_dataset) == kept
    valid_ids = set(tiny_data.manifest("valid").ids)
    assert folders - valid_ids == set(kept)  # statistics and every epoch read only kept tracks
    assert history["sepclean"]["train_tracks"] == kept
    removed = [i for i in train_manifest.ids if i not in kept]
    assert history["sepclean"]["removed_tracks"] == removed
    assert f"training vocals on {len(kept)} tracks, removed 2 ({', '.join(removed)})" in stdout


def test_training_ends_with_a_summary_line(clean_run):
    _, output, history, _, stdout = clean_run
    assert stdout.splitlines()[-1] == (f"vocals: 2 epoch(s) trained; best epoch {history['best_epoch']} (valid loss "
                                       f"{history['best_loss']:.6g}); model: {output / 'vocals.pth'}")


def test_training_into_a_log_file_writes_lines_not_bars(tiny_data, tmp_path, capsys):
    # stderr is no terminal here (pytest captures it), as in a grid XP's run.log or SLURM's output
    argv = [a for a in manifest_argv(tiny_data, tmp_path / "run", epochs=1) if a != "--quiet"]
    Training.from_argv(argv).run()
    out, err = capsys.readouterr()
    assert "\r" not in out + err and "it/s" not in err and "\x1b" not in out + err, err[-500:]
    assert re.search(r"^epoch 1/1: train loss [\d.e+-]+, valid loss [\d.e+-]+ \(best\)$", out, re.M), out
    assert out.splitlines()[-1].startswith("vocals: 1 epoch(s) trained; best epoch 1 (valid loss ")


def test_training_without_a_clean_manifest_reads_every_track(dirty_run, train_manifest, tiny_data):
    _, _, _, folders = dirty_run
    assert folders - set(tiny_data.manifest("valid").ids) == set(train_manifest.ids)


def test_interrupted_training_resumes_from_its_checkpoint(tiny_data, tmp_path):
    first = Training.from_argv(manifest_argv(tiny_data, tmp_path, epochs=2)).run()
    state = torch.load(tmp_path / "vocals.chkpnt", weights_only=True)
    resumed = Training.from_argv(manifest_argv(tiny_data, tmp_path, "--checkpoint", str(tmp_path), epochs=3)).run()
    assert resumed["epochs_trained"] == 3
    assert resumed["valid_loss_history"][:2] == first["valid_loss_history"]
    assert len(resumed["train_time_history"]) == 3
    after = torch.load(tmp_path / "vocals.chkpnt", weights_only=True)
    steps = lambda s: next(iter(s["optimizer"]["state"].values()))["step"].item()  # noqa: E731
    assert steps(after) == steps(state) + 2  # 8 tracks, batch 4: the optimizer state carried on
    done = Training.from_argv(manifest_argv(tiny_data, tmp_path, "--checkpoint", str(tmp_path), epochs=3)).run()
    assert done["epochs_trained"] == 3


def test_resuming_with_another_architecture_is_refused(dirty_run, tiny_data, tmp_path, capsys):
    _, output, _, _ = dirty_run
    argv = manifest_argv(tiny_data, tmp_path, "--checkpoint", str(output), "--hidden-size", "24", epochs=3)
    assert train_main(argv) == 2
    assert "--hidden-size 16 (now 24)" in capsys.readouterr().err


def test_upstream_dataset_from_a_root_is_filtered_by_track_name(tiny_data, kept, tmp_path, capsys):
    clean_path = write_clean(tmp_path / "clean.json", kept)
    argv = ["--root", str(tiny_data.root), "--dataset", "trackfolder_fix", "--target-file", "vocals.wav",
            "--interferer-files", "bass.wav", "drums.wav", "other.wav", "--output", str(tmp_path / "run"),
            "--epochs", "1", "--clean-manifest", str(clean_path), *TINY]
    training = Training.from_argv(argv)
    assert sorted(OpenUnmixToolkit().dataset_tracks(training.train_dataset)) == sorted(kept)
    history = training.run()
    assert sorted(history["sepclean"]["train_tracks"]) == sorted(kept)


def test_validation_manifest_at_another_sample_rate_is_refused(tiny_data, tmp_path, capsys):
    from sepclean import audio
    from sepclean.scan import scan

    valid = tmp_path / "valid48k"
    for track in tiny_data.manifest("valid"):
        for source in ("mixture", *track.stems):
            audio.write(valid / track.id / f"{source}.wav", track.read(source), 48000)
    manifest, _ = scan([valid], progress=False, workers=1)
    manifest.write(tmp_path / "valid48k.jsonl")
    argv = manifest_argv(tiny_data, tmp_path / "run")
    argv[argv.index("--valid-manifest") + 1] = str(tmp_path / "valid48k.jsonl")
    assert train_main(argv) == 2
    assert "valid48k.jsonl is at 48000 Hz, --manifest" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("option, value", [("--epochs", "0"), ("--epochs", "-1"), ("--epoch-updates", "0"),
                                           ("--batch-size", "0")])
def test_counts_below_one_are_refused_before_any_data_is_read(tiny_data, tmp_path, capsys, option, value):
    argv = manifest_argv(tiny_data, tmp_path / "run", option, value)
    argv[argv.index("--manifest") + 1] = str(tmp_path / "absent.jsonl")  # read first, it would be the error
    assert train_main(argv) == 2
    assert capsys.readouterr().err == f"error: {option} must be at least 1; got {value}\n"
    assert not (tmp_path / "run").exists()


TRAIN = [sys.executable, "-m", "sepclean_plugins.openunmix.train"]


def test_a_read_only_output_is_one_line_naming_it(tiny_data, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    done = read_only(locked, [*TRAIN, *manifest_argv(tiny_data, locked / "run", epochs=1)])
    assert done.returncode == 2 and "Traceback" not in done.stdout + done.stderr, done.stderr[-2000:]
    assert done.stderr == f"error: cannot write {locked / 'run' / 'separator.json'}: Read-only file system\n"


def test_a_full_disk_is_one_line_naming_the_file(tiny_data, tmp_path):
    # room for separator.json, not for the first epoch's weights (torch.save's own error names neither)
    output = tmp_path / "small"
    done = full_disk(output, [*TRAIN, *manifest_argv(tiny_data, output, epochs=1)], room_kib=64)
    assert done.returncode == 2 and "Traceback" not in done.stdout + done.stderr, done.stderr[-2000:]
    assert done.stderr == f"error: cannot write {output / 'vocals.pth'}: No space left on device\n"


def test_upstream_dataset_without_validation_tracks_is_refused(tiny_data, tmp_path, capsys):
    # --dataset musdb on data that is not MUSDB18: its validation subset (MUSDB's songs, by name) is empty.
    import shutil

    shutil.copytree(tiny_data.root / "train", tmp_path / "root" / "train")
    before = tree_state(tmp_path / "root")
    argv = ["--root", str(tmp_path / "root"), "--dataset", "musdb", "--is-wav", "--output", str(tmp_path / "run"),
            "--epochs", "1", *TINY]
    assert train_main(argv) == 2
    assert "has no validation tracks: early stopping would watch a validation loss of 0" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and tree_state(tmp_path / "root") == before


def test_input_statistics_match_the_standard_scaler_upstream_uses():
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    rng = np.random.default_rng(0)
    chunks = [rng.gamma(2.0, size=(n, 5)) * np.arange(1, 6) for n in (7, 30, 1, 12)]
    scaler, moments = preprocessing.StandardScaler(), RunningMoments()
    for chunk in chunks:
        scaler.partial_fit(chunk)
        moments.update(chunk)
    np.testing.assert_allclose(moments.mean, scaler.mean_)
    np.testing.assert_allclose(moments.std, scaler.scale_)


def upstream_dataset(layout: str, root: Path):
    """Each of openunmix.data's dataset classes over the tiny dataset's train split."""
    if layout == "trackfolder_fix":
        return openunmix.data.FixedSourcesTrackFolderDataset(root, interferer_files=["bass.wav"], seq_duration=1.0)
    if layout == "trackfolder_var":
        return openunmix.data.VariableSourcesTrackFolderDataset(root, seq_duration=1.0)
    if layout == "aligned":
        return openunmix.data.AlignedDataset(root, input_file="mixture.wav", output_file="vocals.wav")
    if layout == "musdb":
        return openunmix.data.MUSDBDataset(root=str(root), is_wav=True, subsets="train", seq_duration=1.0)
    by_source = root.parent / "by_source"  # sourcefolder: train/<source>/<track>.wav
    for track in (root / "train").iterdir():
        for source in ("vocals", "bass"):
            (by_source / "train" / source).mkdir(parents=True, exist_ok=True)
            (by_source / "train" / source / f"{track.name}.wav").symlink_to(track / f"{source}.wav")
    return openunmix.data.SourceFolderDataset(by_source, interferer_dirs=["bass"], seq_duration=1.0)


@pytest.mark.parametrize("layout", ["trackfolder_fix", "trackfolder_var", "aligned", "musdb", "sourcefolder"])
def test_every_upstream_dataset_is_filtered_in_place(layout, tiny_data, train_manifest, kept, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / "train").symlink_to(tiny_data.root / "train")
    dataset = upstream_dataset(layout, root)
    assert sorted(clean.track_ids(dataset)) == train_manifest.ids
    selection = clean.apply(CleanManifest(keep={"vocals": kept, "bass": []}), "vocals", dataset)
    assert sorted(clean.track_ids(dataset)) == kept == sorted(selection.kept)
    assert sorted(selection.removed) == [i for i in train_manifest.ids if i not in kept]
    x, y = dataset[len(dataset) - 1]
    assert x.shape == y.shape
    with pytest.raises(ToolkitError, match="keeps none of the dataset's"):
        clean.apply(CleanManifest(keep={"vocals": kept, "bass": []}), "bass", dataset)


# --- bad input -----------------------------------------------------------------------------------

def test_clean_manifest_naming_absent_tracks(tiny_data, train_manifest, tmp_path, capsys):
    clean_path = write_clean(tmp_path / "c.json", train_manifest.ids[:3] + ["ghost_1", "ghost_2"], train_manifest)
    assert train_main(manifest_argv(tiny_data, tmp_path / "run", "--clean-manifest", str(clean_path))) == 2
    assert "2 track(s) absent from the dataset: ghost_1, ghost_2" in capsys.readouterr().err


def test_clean_manifest_keeping_nothing(adapter, train_manifest):
    clean_manifest = CleanManifest(keep={"vocals": [], "bass": train_manifest.ids}, dataset_hash=train_manifest.hash)
    with pytest.raises(ToolkitError, match="keeps no track for target 'vocals'"):
        adapter.dataset(train_manifest, "vocals", clean=clean_manifest, segment=2.0)
    bass = adapter.dataset(train_manifest, "bass", clean=clean_manifest, segment=2.0)
    assert adapter.dataset_tracks(bass) == train_manifest.ids


def test_clean_manifest_made_for_another_dataset(tiny_data, train_manifest, kept, tmp_path, capsys):
    clean_path = write_clean(tmp_path / "c.json", kept, dataset_hash="0" * 64)
    argv = manifest_argv(tiny_data, tmp_path / "run", "--clean-manifest", str(clean_path), epochs=1)
    assert train_main(argv) == 2
    assert "made for another dataset manifest" in capsys.readouterr().err
    training = Training.from_argv(argv + ["--allow-other-dataset"])
    assert OpenUnmixToolkit().dataset_tracks(training.train_dataset) == kept


def test_missing_or_corrupt_checkpoints(adapter, dirty_run, tmp_path):
    _, output, _, _ = dirty_run
    with pytest.raises(ToolkitError, match="no such checkpoint"):
        adapter.load(tmp_path / "nowhere", "vocals")
    with pytest.raises(ToolkitError, match=r"no Open-Unmix model for target 'bass' \(it has models for: vocals\)"):
        adapter.load(output, "bass")
    with pytest.raises(ToolkitError, match="model of target 'vocals', not 'drums'"):
        adapter.load(output / "vocals.pth", "drums")
    assert adapter.load(output / "vocals.chkpnt", "vocals").stft.nhop == 512

    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("separator.json", "vocals.json"):
        (broken / name).write_text((output / name).read_text())
    (broken / "vocals.pth").write_bytes((output / "vocals.pth").read_bytes()[:300])
    with pytest.raises(ToolkitError, match="not a readable torch checkpoint"):
        adapter.load(broken, "vocals")
    (broken / "vocals.pth").write_bytes((output / "vocals.pth").read_bytes())
    (broken / "separator.json").write_text("{\"nfft\": ")
    with pytest.raises(ToolkitError, match="separator.json: not JSON"):
        adapter.load(broken, "vocals")


def test_checkpoint_of_another_toolkit(adapter, tmp_path):
    from demucs.demucs import Demucs
    from demucs.states import serialize_model
    from omegaconf import OmegaConf

    model = Demucs(sources=list(STEMS), channels=4, depth=2)
    torch.save(serialize_model(model, OmegaConf.create({})), tmp_path / "model.th")
    with pytest.raises(ToolkitError, match="not an Open-Unmix checkpoint.*looks like a Demucs checkpoint"):
        adapter.load(tmp_path / "model.th", "vocals")
    with pytest.raises(ToolkitError, match="not an Open-Unmix checkpoint.*looks like a Demucs checkpoint"):
        adapter.load(tmp_path, "vocals")


def test_checkpoint_of_another_target(adapter, dirty_run, tmp_path):
    _, output, _, _ = dirty_run
    relabelled = tmp_path / "relabelled"
    relabelled.mkdir()
    (relabelled / "separator.json").write_text((output / "separator.json").read_text())
    (relabelled / "bass.pth").write_bytes((output / "vocals.pth").read_bytes())
    (relabelled / "bass.json").write_text((output / "vocals.json").read_text())
    with pytest.raises(ToolkitError, match="trained for target 'vocals', not 'bass'"):
        adapter.load(relabelled, "bass")


# --- the wrapper around a user's own training script ----------------------------------------------

USER_SCRIPT = '''
import argparse, json
import openunmix.data

parser = argparse.ArgumentParser()
parser.add_argument("--root")
parser.add_argument("--dataset", default="musdb")
parser.add_argument("--target", default="vocals")
parser.add_argument("--seq-dur", type=float, default=1.0)
parser.add_argument("--seed", type=int, default=42)
parser.add_argument("--record")
args, _ = parser.parse_known_args()
train, valid, args = openunmix.data.load_datasets(parser, args)
seen = sorted({train.tracks[i]["path"].name for i in range(len(train)) if train[i] is not None})
with open(args.record, "w") as f:
    json.dump({"tracks": seen, "target": args.target, "valid": len(valid)}, f)
'''


def test_upstream_script_runs_with_a_clean_manifest(tiny_data, kept, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(USER_SCRIPT)
    record = tmp_path / "record.json"
    clean_path = write_clean(tmp_path / "clean.json", {"drums": kept, "vocals": kept[:2]})
    argv = [str(script), "--root", str(tiny_data.root), "--dataset", "trackfolder_fix", "--target-file", "drums.wav",
            "--interferer-files", "vocals.wav", "bass.wav", "other.wav", "--clean-manifest", str(clean_path),
            "--record", str(record)]
    original = openunmix.data.load_datasets
    assert run_upstream.main(argv) == 0
    assert json.loads(record.read_text()) == {"tracks": sorted(kept), "target": "drums", "valid": 2}
    assert openunmix.data.load_datasets is original

    absent = write_clean(tmp_path / "absent.json", kept + ["ghost"])
    assert run_upstream.main([*argv[:-4], "--clean-manifest=" + str(absent), "--record", str(record)]) == 2
    assert run_upstream.main(argv[:-4] + ["--record", str(record)]) == 2  # no --clean-manifest


def test_umx_separates_with_a_model_trained_here(dirty_run, adapter, tiny_data, tmp_path):
    import subprocess
    import sys

    from sepclean import audio

    _, output, _, _ = dirty_run
    track = tiny_data.manifest("test").tracks[0]
    before = tree_state(tiny_data.root / "test", output)
    options = [str(track.path("mixture")), "--model", str(output), "--targets", "vocals",
               "--residual", "rest", "--outdir", str(tmp_path / "separated"), "--no-cuda"]
    # Why the module exists: upstream's umx, unpatched, fails on the tested torchaudio.
    plain = subprocess.run([sys.executable, "-c", "import sys; from openunmix.cli import separate; "
                            "sys.argv = ['umx', *sys.argv[1:]]; separate()", *options], capture_output=True, text=True)
    assert plain.returncode != 0 and not (tmp_path / "separated").exists()
    done = subprocess.run([sys.executable, "-m", "sepclean_plugins.openunmix.umx", *options, "--audio-backend",
                           "soundfile"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "it/s]" not in done.stderr and "\r" not in done.stderr  # upstream's bar over the files: a terminal's only
    folder = tmp_path / "separated" / "mixture"
    assert sorted(p.name for p in folder.iterdir()) == ["residual.wav", "vocals.wav"]  # upstream names it so
    vocals, rate = audio.read(folder / "vocals.wav")
    assert rate == track.sample_rate and vocals.shape == (track.channels, track.frames)
    # The same separation as sepclean's (Open-Unmix's Separator, the rest as a residual).
    expected = adapter.separate({"vocals": adapter.load(output, "vocals")}, track.read("mixture"), rate)["vocals"]
    np.testing.assert_allclose(vocals, expected, atol=1e-5)
    assert tree_state(tiny_data.root / "test", output) == before


def test_umx_without_targets_separates_the_run_folders_own(dirty_run, tiny_data, tmp_path, capsys):
    from sepclean_plugins.openunmix import umx

    _, output, _, _ = dirty_run
    mixture = str(tiny_data.manifest("test").tracks[0].path("mixture"))
    argv = [mixture, "--model", str(output), "--outdir", str(tmp_path / "out"), "--no-cuda",
            "--audio-backend", "soundfile"]
    assert umx.with_run_targets(argv) == [*argv, "--targets", "vocals", "--residual", "residual"]
    assert umx.with_run_targets([*argv, "--residual", "rest"]) == [*argv, "--residual", "rest", "--targets", "vocals"]
    for given in (["--targets", "bass"], ["--model", "umxl"], ["--model", str(tmp_path / "absent")]):
        assert umx.with_run_targets([mixture, *given]) == [mixture, *given]  # left to upstream
    assert umx.main(argv) == 0, capsys.readouterr().err
    # docs/training.md's umx command as written: the run's vocals, the rest of the mixture as a residual
    assert sorted(p.name for p in (tmp_path / "out" / "mixture").iterdir()) == ["residual.wav", "vocals.wav"]
    capsys.readouterr()

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "separator.json").write_text((output / "separator.json").read_text())
    assert umx.main([mixture, "--model", str(empty), "--outdir", str(tmp_path / "none"), "--no-cuda"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"umx: error: {empty}: no Open-Unmix model in this run folder (no <target>.pth with its " \
        "<target>.json)" and not (tmp_path / "none").exists()


def test_umx_refuses_a_planted_model_by_name(dirty_run, tiny_data, tmp_path, capsys):
    from sepclean_plugins.openunmix import umx

    _, output, _, _ = dirty_run
    run = tmp_path / "run"
    run.mkdir()
    for name in ("separator.json", "vocals.json"):
        (run / name).write_text((output / name).read_text())
    marker = tmp_path / "payload-ran"
    torch.save({"input_mean": torch.zeros(3), "note": Payload(marker)}, run / "vocals.pth")
    mixture = str(tiny_data.manifest("test").tracks[0].path("mixture"))
    assert umx.main([mixture, "--model", str(run), "--targets", "vocals", "--outdir", str(tmp_path / "out"),
                     "--no-cuda"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"umx: error: {run / 'vocals.pth'}: refused to load: it names posix.system")
    assert "\n" not in error and not marker.exists() and not (tmp_path / "out").exists()


def test_pop_option():
    assert run_upstream.pop_option(["a", "--clean-manifest", "x", "b"], "--clean-manifest") == ("x", ["a", "b"])
    assert run_upstream.pop_option(["--clean-manifest=y"], "--clean-manifest") == ("y", [])
    assert run_upstream.pop_option(["a"], "--clean-manifest") == (None, ["a"])
