"""The Demucs plugin on the tiny synthetic data: the adapter (sepclean's Toolkit contract) and
training through dora and hydra with the plugin's config.

Training is HDemucs at the tiny_hdemucs preset, an epoch or two of a few batches: once by
``dora run`` in a subprocess (killed during its second epoch, then resumed), once in this process
through dora's Python API with a clean manifest, asserting on the solver's own dataset object.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from demucs import states
from demucs.hdemucs import HDemucs
from demucs.htdemucs import HTDemucs
from demucs.solver import Solver
from omegaconf import OmegaConf
from torch.utils.data import ConcatDataset
from conftest import Payload, read_only

from sepclean import STEMS, toolkit
from sepclean.clean_manifest import CleanManifest, CleanManifestError
from sepclean.manifest import Manifest
from sepclean.scan import scan
from sepclean.toolkit import ToolkitError
from sepclean_plugins.demucs import DemucsToolkit, data, train
from sepclean_plugins.demucs.models import demucs_train

DORA_RUN = [sys.executable, "-m", "dora", "-P", "sepclean_plugins.demucs", "run"]
TINY = ["variant=tiny_hdemucs", "max_batches=4"]  # max_batches caps validation batches too
UNIT = "all"


@pytest.fixture(scope="module")
def xps(tmp_path_factory):
    """dora's folder for this module's XPs, for dora subprocesses and for this process."""
    root = tmp_path_factory.mktemp("dora")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEPCLEAN_DEMUCS_DIR", str(root))
        patch.setattr(train.main.dora, "dir", root)  # read from the config when train was imported
        yield root


def tiny(data_, *extra: str) -> list[str]:
    return [*TINY, f"dset.wav={data_.root}", *extra]


def new_xp(argv: list[str]):
    """The XP ``dora run ARGV`` would run, initialised, to run in this process with ``xp.enter()``."""
    xp = train.main.get_xp(argv)
    train.main.init_xp(xp)
    return xp


def history(folder) -> list[dict]:
    from sepclean_plugins.demucs.models import read_package

    return read_package(folder / "checkpoint.th")["history"]


def tiny_model_file(path) -> None:
    """A tiny untrained HDemucs saved as demucs exports models (``states.serialize_model``)."""
    model = HDemucs(sources=list(DemucsToolkit.sources), channels=8, depth=4, nfft=1024)
    torch.save(states.serialize_model(model, OmegaConf.create({"optim": {"loss": "l1"}}), half=False), path)


@pytest.fixture(scope="module")
def baseline(tiny_data, xps, tmp_path_factory):
    """Tiny HDemucs trained for 2 epochs by ``dora run``, killed during the second one and rerun."""
    argv = tiny(tiny_data, "epochs=2")
    folder = train.main.get_xp(argv).folder
    logs = tmp_path_factory.mktemp("logs")
    with open(logs / "interrupted.log", "w") as out:
        first = subprocess.Popen(DORA_RUN + argv, stdout=out, stderr=subprocess.STDOUT, cwd=logs)
        deadline = time.monotonic() + 300
        # best.th is the last file the solver writes after an epoch.
        while not (folder / "best.th").exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        first.kill()
        first.wait()
    assert (folder / "best.th").exists(), (logs / "interrupted.log").read_text()[-3000:]
    interrupted = history(folder)
    resumed = subprocess.run(DORA_RUN + argv, capture_output=True, text=True, cwd=logs, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    return SimpleNamespace(folder=folder, interrupted=interrupted, log=resumed.stdout + resumed.stderr)


def test_interrupted_training_resumes_from_its_checkpoint(baseline):
    assert len(baseline.interrupted) == 1
    assert "Loading checkpoint model" in baseline.log
    assert baseline.log.count("Training...") == 1  # the second epoch only
    final = history(baseline.folder)
    assert len(final) == 2 and final[0] == baseline.interrupted[0]


def test_trained_model_loads_and_separates(baseline, tiny_data):
    tk = toolkit.get("demucs")
    assert tk.joint and tk.units(["vocals"]) == tk.units() == [UNIT]
    assert sorted(tk.unit_targets(UNIT)) == sorted(STEMS)
    model = tk.load(baseline.folder, UNIT)
    assert isinstance(model, HDemucs) and not model.training
    from_state = tk.load(baseline.folder / "checkpoint.th", UNIT)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), from_state.state_dict().values()))

    track = tiny_data.manifest("test").tracks[0]
    mixture = track.read("mixture")
    estimates = tk.separate({UNIT: model}, mixture, track.sample_rate)
    assert sorted(estimates) == sorted(STEMS)
    for estimate in estimates.values():
        assert estimate.shape == mixture.shape and np.isfinite(estimate).all()
    mono = tk.separate({UNIT: model}, mixture[:1, :20000], 22050)  # resampled and downmixed back
    assert {e.shape for e in mono.values()} == {(1, 20000)}


def test_retraining_sees_exactly_the_kept_tracks(tiny_data, xps, tmp_path, caplog):
    manifest = tiny_data.manifest("train")
    ids = manifest.ids
    keep = {target: ids[:6] for target in STEMS}
    keep["vocals"] = ids[:4] + ids[6:]
    clean = CleanManifest(keep=keep, dataset_hash=manifest.hash, dataset_tracks=len(ids), mode="per-target")
    clean.write(tmp_path / "clean.json")
    argv = tiny(tiny_data, "epochs=1", f"dset.manifest={tiny_data.manifests['train']}",
                f"dset.clean_manifest={tmp_path / 'clean.json'}")
    xp = new_xp(argv)
    tk = DemucsToolkit()
    with xp.enter(), caplog.at_level("INFO"):
        solver = train.get_solver(xp.cfg)
        assert tk.dataset_tracks(solver.loaders["train"].dataset) == ids[:4]
        solver.train()
    assert "2 track(s) kept for vocals are dropped" in caplog.text
    assert "2 track(s) kept for drums are dropped" in caplog.text
    assert "keeps 4 of 8 tracks (4 dropped)" in caplog.text
    assert len(history(xp.folder)) == 1
    # The adapter reduces the clean manifest the same way.
    assert tk.dataset_tracks(tk.dataset(manifest, UNIT, clean=clean)) == ids[:4]


@pytest.mark.parametrize("kind", ["l1", "mse"])
def test_loss_is_the_solvers_per_source_loss(tiny_data, xps, tmp_path, kind):
    xp = new_xp(tiny(tiny_data, f"optim.loss={kind}", "valid_apply=false"))
    torch.manual_seed(0)
    model = demucs_train().get_model(xp.cfg)
    torch.save(states.serialize_model(model, xp.cfg, half=False), tmp_path / "model.th")
    tk = DemucsToolkit()
    model = tk.load(tmp_path / "model.th", UNIT)
    dataset = tk.dataset(tiny_data.manifest("train"), UNIT, deterministic=True, segment=1.5)
    sources = torch.stack([dataset[i] for i in range(3)])
    with torch.no_grad():
        losses = tk.loss(UNIT, model, sources)
    assert losses.shape == (3, len(STEMS)) and torch.isfinite(losses).all()

    # The solver's validation pass on the same examples (its batches put the mixture first).
    batch = torch.cat([sources.sum(dim=1, keepdim=True), sources], dim=1)
    optimizer = demucs_train().get_optimizer(model, xp.cfg)
    with xp.enter(), torch.no_grad():
        metrics = Solver({"valid": [batch]}, model, optimizer, xp.cfg)._run_one_epoch(0, train=False)
    reco = losses.mean(0) if kind == "l1" else losses.sqrt().mean(0)  # what it reports per source
    for source, value in zip(tk.unit_targets(UNIT), reco):
        assert metrics[f"reco_{source}"] == pytest.approx(value.item(), rel=1e-5)


def test_htdemucs_preset_trains(tiny_data, xps):
    xp = new_xp([*tiny(tiny_data, "epochs=1", "max_batches=2"), "variant=tiny_htdemucs"])
    with xp.enter():
        solver = train.get_solver(xp.cfg)
        assert isinstance(solver.model, HTDemucs)
        solver.train()
    tk = DemucsToolkit()
    model = tk.load(xp.folder, UNIT)
    track = tiny_data.manifest("test").tracks[0]
    estimates = tk.separate({UNIT: model}, track.read("mixture"), track.sample_rate)
    assert all(np.isfinite(e).all() and e.shape == (2, track.frames) for e in estimates.values())


def test_full_size_defaults_and_cpu_presets():
    default = train.main.get_xp([]).cfg
    assert default.model == "hdemucs" and default.batch_size == 64 and default.dset.segment == 11
    assert (default.hdemucs.channels, default.hdemucs.depth, default.hdemucs.nfft) == (48, 6, 4096)
    assert default.augment.repitch.proba == 0  # needs the soundstretch binary
    assert train.main.get_xp(["model=htdemucs"]).cfg.htdemucs.t_layers == 5
    small = train.main.get_xp(["variant=tiny_hdemucs"]).cfg
    assert (small.hdemucs.channels, small.hdemucs.depth, small.hdemucs.nfft) == (8, 4, 1024)
    assert train.main.get_xp(["variant=tiny_htdemucs"]).cfg.model == "htdemucs"


def test_dataset_over_several_roots(tiny_data):
    manifest = Manifest(tiny_data.manifest("train").tracks + tiny_data.manifest("valid").tracks)
    tk = DemucsToolkit()
    dataset = tk.dataset(manifest, UNIT, deterministic=True, segment=1.5)
    assert len(data.wavsets(dataset)) == 1  # one Wavset reading each file the manifest names
    assert tk.dataset_tracks(dataset) == manifest.ids
    for track in (manifest.tracks[1], manifest.tracks[-1]):
        indices = tk.examples(dataset, track.id)
        assert len(indices) == 3  # 4 s in 1.5 s excerpts, the last one padded
        meta = data.track_metadata(track)
        frames = int(1.5 * track.sample_rate)
        expected = np.stack([track.read(s, frames, frames) for s in tk.unit_targets(UNIT)])
        expected = (expected - meta["mean"]) / meta["std"]
        np.testing.assert_allclose(dataset[indices[1]].numpy(), expected, atol=1e-5)
    with pytest.raises(ToolkitError, match="not in this dataset"):
        tk.examples(dataset, "ghost")


def test_stems_only_tracks_are_read_without_writing_a_mixture(tiny_data, tmp_path):
    source = tiny_data.manifest("train").tracks[0]
    folder = tmp_path / "stems_only" / source.id
    folder.mkdir(parents=True)
    for stem in STEMS:
        shutil.copy(source.path(stem), folder)
    manifest, problems = scan([folder.parent], progress=False, workers=1)
    assert not problems and manifest.tracks[0].mixture is None
    tk = DemucsToolkit()
    dataset = tk.dataset(manifest, UNIT, segment=1.5)
    assert dataset[0].shape == (4, 2, int(1.5 * 44100))
    assert data.track_metadata(manifest.tracks[0]) == pytest.approx(data.track_metadata(source))
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{s}.wav" for s in STEMS)
    with pytest.raises(ToolkitError, match="validation tracks need a mixture"):
        data.wavset(manifest, ["mixture", *STEMS])


def bad_clean_manifests(manifest: Manifest) -> dict[str, tuple[CleanManifest, str]]:
    """name -> (clean manifest, the error it must raise)."""
    ids = manifest.ids
    return {
        "absent": (CleanManifest(keep=ids[:3] + ["ghost_1", "ghost_2"], dataset_hash=manifest.hash),
                   "2 track\\(s\\) absent from the dataset: ghost_1, ghost_2"),
        "nothing": (CleanManifest(keep={"vocals": ids[:3], "bass": ids[3:6]}, dataset_hash=manifest.hash),
                    "keeps no track at all"),
        "other dataset": (CleanManifest(keep=ids[:3], dataset_hash="0" * 64), "made for another dataset"),
    }


def test_bad_clean_manifests_in_the_adapter(tiny_data):
    manifest = tiny_data.manifest("train")
    tk = DemucsToolkit()
    for clean, error in bad_clean_manifests(manifest).values():
        with pytest.raises(CleanManifestError, match=error):
            tk.dataset(manifest, UNIT, clean=clean)
    other, _ = bad_clean_manifests(manifest)["other dataset"]
    assert tk.dataset_tracks(tk.dataset(manifest, UNIT, clean=other, allow_other_dataset=True)) == manifest.ids[:3]


def test_bad_clean_manifests_in_training(tiny_data, xps, tmp_path):
    manifest = tiny_data.manifest("train")
    for name, (clean, error) in bad_clean_manifests(manifest).items():
        path = tmp_path / f"{name.replace(' ', '_')}.json"
        clean.write(path)
        args = train.main.get_xp(tiny(tiny_data, f"dset.clean_manifest={path}")).cfg
        with pytest.raises(CleanManifestError, match=f"dset.clean_manifest={path}: .*{error}"):
            train.get_datasets(args)
    other = tmp_path / "other_dataset.json"
    with pytest.raises(CleanManifestError, match="dset.allow_other_dataset=true"):
        train.get_datasets(train.main.get_xp(tiny(tiny_data, f"dset.clean_manifest={other}")).cfg)
    args = train.main.get_xp(tiny(tiny_data, f"dset.clean_manifest={other}", "dset.allow_other_dataset=true")).cfg
    assert DemucsToolkit().dataset_tracks(train.get_datasets(args)[0]) == manifest.ids[:3]

    # Too few examples left for one batch.
    CleanManifest(keep=manifest.ids[:1], dataset_hash=manifest.hash).write(tmp_path / "one.json")
    xp = new_xp(tiny(tiny_data, f"dset.clean_manifest={tmp_path / 'one.json'}", "batch_size=8"))
    with xp.enter(), pytest.raises(ToolkitError, match="5 training example\\(s\\) for batches of 8"):
        train.get_solver(xp.cfg)


def test_dora_run_reports_a_bad_clean_manifest(tiny_data, xps, tmp_path):
    manifest = tiny_data.manifest("train")
    clean, error = bad_clean_manifests(manifest)["absent"]
    clean.write(tmp_path / "clean.json")
    run = subprocess.run(DORA_RUN + tiny(tiny_data, f"dset.clean_manifest={tmp_path / 'clean.json'}"),
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode != 0
    assert "absent from the dataset: ghost_1, ghost_2" in run.stdout + run.stderr


def test_missing_test_set_fails_before_training(tiny_data, xps, tmp_path):
    xp = new_xp(tiny(tiny_data, f"dset.musdb={tmp_path}"))
    with xp.enter(), pytest.raises(ToolkitError, match="dset.musdb=.*evaluates on <dset.musdb>/test"):
        train.get_solver(xp.cfg)


@pytest.mark.parametrize("setting", ["epochs=0", "epochs=-1", "epoch_updates=0", "batch_size=0"])
def test_counts_below_one_are_refused(tiny_data, xps, setting):
    xp = new_xp(tiny(tiny_data, setting))
    key, _, value = setting.partition("=")
    with pytest.raises(ToolkitError, match=f"^{key} must be a whole number >= 1; got {value}$"):
        train.check_counts(xp.cfg)


def test_a_batch_the_remix_cannot_group_is_refused(tiny_data, xps):
    with pytest.raises(ToolkitError, match="^batch_size=2 must be a multiple of augment.remix.group_size=4 "):
        train.check_counts(new_xp(tiny(tiny_data, "batch_size=2")).cfg)
    train.check_counts(new_xp(tiny(tiny_data, "batch_size=2", "augment.remix.proba=0")).cfg)
    train.check_counts(new_xp(tiny(tiny_data, "batch_size=8")).cfg)


def test_bad_checkpoints(tmp_path):
    from openunmix.model import OpenUnmix

    tk = DemucsToolkit()
    with pytest.raises(ToolkitError, match="no such checkpoint"):
        tk.load(tmp_path / "nowhere", UNIT)

    umx = tmp_path / "umx"
    umx.mkdir()
    torch.save(OpenUnmix(nb_bins=1025, hidden_size=16).state_dict(), umx / "vocals.pth")
    (umx / "separator.json").write_text("{}")
    with pytest.raises(ToolkitError, match="not a demucs checkpoint.*--toolkit openunmix"):
        tk.load(umx / "vocals.pth", UNIT)
    with pytest.raises(ToolkitError, match="not a demucs run folder.*separator.json, vocals.pth"):
        tk.load(umx, UNIT)

    tiny_model_file(tmp_path / "model.th")
    assert isinstance(tk.load(tmp_path / "model.th", UNIT), HDemucs)
    with pytest.raises(ToolkitError, match="joint model"):
        tk.load(tmp_path / "model.th", "vocals")
    content = (tmp_path / "model.th").read_bytes()
    (tmp_path / "truncated.th").write_bytes(content[: len(content) // 2])
    (tmp_path / "garbage.th").write_text("not a checkpoint")
    for name in ("truncated.th", "garbage.th"):
        with pytest.raises(ToolkitError, match="not a readable torch checkpoint"):
            tk.load(tmp_path / name, UNIT)


def test_demucs_train_needs_the_import_patch():
    # Why models.demucs_train() exists: the wheel's demucs.train composes ../conf at import time.
    import subprocess
    import sys

    code = "import demucs.train"
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert plain.returncode != 0 and "MissingConfigException" in plain.stderr
    module = demucs_train()
    assert callable(module.get_model) and callable(module.get_solver)


def test_a_planted_checkpoint_never_runs_its_payload(tmp_path):
    xp = tmp_path / "xps" / "0123abcd"
    xp.mkdir(parents=True)
    marker = tmp_path / "payload-ran"
    config = OmegaConf.create({"optim": {"loss": "l1"}, "dset": {"sources": list(DemucsToolkit.sources)}})
    torch.save({"args": config, "state": {}, "best_state": None, "history": [], "note": Payload(marker)},
               xp / "checkpoint.th")
    with pytest.raises(ToolkitError, match="refused to load: it names posix.system"):
        DemucsToolkit().load(xp, UNIT)
    assert not marker.exists()
    torch.load(xp / "checkpoint.th", weights_only=False)  # what demucs' own loaders do: the plant is live
    assert marker.exists()


def test_solver_state_is_plain_data(baseline):
    # The checkpoint.th the solver wrote (through solver_state): weights-only with no class allowed.
    package = torch.load(baseline.folder / "checkpoint.th", weights_only=True)
    assert package["args"]["dset"]["sources"] == list(DemucsToolkit.sources)
    assert len(package["history"]) == 2 and isinstance(package["state"], dict)
    assert all(isinstance(v, float) for v in package["history"][0]["train"].values())


def plant(path, marker) -> None:
    """A solver state whose unpickling would create ``marker``."""
    torch.save({"state": {}, "optimizer": {}, "history": [], "best_state": None, "note": Payload(marker)}, path)


def test_a_planted_solver_state_is_refused_on_resume(tiny_data, xps, tmp_path):
    xp = new_xp(tiny(tiny_data, "epochs=1", "seed=9431"))
    marker = tmp_path / "payload-ran"
    plant(xp.folder / "checkpoint.th", marker)
    with xp.enter(), pytest.raises(ToolkitError) as refused:
        train.get_solver(xp.cfg)
    assert str(refused.value).startswith(f"{xp.folder / 'checkpoint.th'}: refused to load: it names posix.system")
    assert "\n" not in str(refused.value) and not marker.exists()


def test_dora_run_refuses_a_planted_state_in_one_line(tiny_data, xps, tmp_path):
    argv = tiny(tiny_data, "epochs=1", "seed=9435")
    folder = train.main.get_xp(argv).folder
    folder.mkdir(parents=True)
    marker = tmp_path / "payload-ran"
    plant(folder / "checkpoint.th", marker)
    run = subprocess.run(DORA_RUN + argv, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 2 and "Traceback" not in run.stdout + run.stderr
    assert run.stderr.splitlines()[-1].startswith(
        f"demucs XP {folder.name}: error: {folder / 'checkpoint.th'}: refused to load: it names posix.system")
    assert not marker.exists()


def test_dora_run_refuses_zero_epochs_in_one_line(tiny_data, xps, tmp_path):
    run = subprocess.run(DORA_RUN + tiny(tiny_data, "epochs=0"), capture_output=True, text=True, cwd=tmp_path,
                         timeout=300)
    assert run.returncode == 2 and "Traceback" not in run.stdout + run.stderr
    assert run.stderr.splitlines()[-1].endswith("error: epochs must be a whole number >= 1; got 0")


@pytest.mark.parametrize("used", [False, True], ids=["new", "used"])
def test_a_read_only_dora_dir_is_one_line_naming_it(tiny_data, tmp_path, monkeypatch, used):
    locked = tmp_path / "locked"
    for folder in ("by_id", "orphans", "arrays") if used else ():  # what every dora command makes first
        (locked / folder).mkdir(parents=True)
    locked.mkdir(exist_ok=True)
    monkeypatch.setenv("SEPCLEAN_DEMUCS_DIR", str(locked))
    run = read_only(locked, DORA_RUN + tiny(tiny_data, "epochs=1"))
    assert run.returncode == 2 and "Traceback" not in run.stdout + run.stderr, run.stderr[-2000:]
    assert run.stderr == (f"dora: error: cannot write {locked / ('xps' if used else 'by_id')}: Read-only file "
                          f"system (dora's folder dora.dir={locked})\n")


def test_a_full_disk_for_the_solver_state_is_one_line_naming_it(tiny_data, tmp_path, monkeypatch):
    """torch.save on a full disk was a RuntimeError traceback (``inline_container.cc ... unexpected pos``)."""
    from conftest import full_disk

    dora_dir = tmp_path / "full"
    monkeypatch.setenv("SEPCLEAN_DEMUCS_DIR", str(dora_dir))
    argv = tiny(tiny_data, "epochs=1", "max_batches=2")
    monkeypatch.setattr(train.main.dora, "dir", dora_dir)
    folder = train.main.get_xp(argv).folder
    run = full_disk(dora_dir, DORA_RUN + argv, room_kib=256)  # room for the XP's folder and logs only
    assert run.returncode == 2 and "Traceback" not in run.stdout + run.stderr, run.stderr[-2000:]
    assert run.stderr.splitlines()[-1] == (f"demucs XP {folder.name}: error: cannot write {folder / 'checkpoint.th'}: "
                                           "No space left on device")


def test_a_training_the_adapter_runs_fails_with_its_error_line(tiny_data, tmp_path):
    """A grid's HDemucs training that the plugin's main refuses: the XP's error says why, not only
    the exit status."""
    from sepclean.toolkit import TrainSpec

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "train.log").write_text("demucs XP 0: error: an earlier attempt's error\n")
    spec = TrainSpec(train=tiny_data.manifests["train"], valid=tiny_data.manifests["valid"], preset="tiny_hdemucs",
                     overrides={"batch_size": 2}, epochs=1, device="cpu", quiet=True, workspace=tmp_path / "xps")
    with pytest.raises(ToolkitError) as failed:
        DemucsToolkit().train(spec, tmp_path / "model")
    assert re.fullmatch(r"demucs training failed with exit status 2: demucs XP \w+: error: batch_size=2 must be a "
                        r"multiple of augment.remix.group_size=4 .* \(log: .*/model/train.log\)", str(failed.value))


def test_a_planted_continue_from_state_is_refused(tiny_data, xps, tmp_path):
    parent = new_xp(tiny(tiny_data, "epochs=1", "seed=9432"))
    marker = tmp_path / "payload-ran"
    plant(parent.folder / "checkpoint.th", marker)
    xp = new_xp(tiny(tiny_data, "epochs=1", "seed=9433", f"continue_from={parent.sig}"))
    with xp.enter(), pytest.raises(ToolkitError, match=f"{parent.folder / 'checkpoint.th'}: refused to load"):
        train.get_solver(xp.cfg)
    assert not marker.exists()


def test_a_state_saved_before_plain_data_still_resumes(baseline, tiny_data, xps):
    # States demucs pickled itself hold an OmegaConf config and numpy metrics: still read weights-only.
    package = torch.load(baseline.folder / "checkpoint.th", weights_only=True)
    package["args"] = OmegaConf.create(package["args"])
    package["history"][0]["valid"]["loss"] = np.float64(package["history"][0]["valid"]["loss"])
    xp = new_xp(tiny(tiny_data, "epochs=2", "seed=9434"))
    torch.save(package, xp.folder / "checkpoint.th")
    with xp.enter():
        solver = train.get_solver(xp.cfg)
    assert solver.history == package["history"] and len(solver.history) == 2
    assert all(torch.equal(a, b) for a, b in zip(solver.model.state_dict().values(), package["state"].values()))
