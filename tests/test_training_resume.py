"""One command starts or resumes training: killed with SIGKILL mid-run and run again, Open-Unmix
training ends with the same weights as an uninterrupted run; a folder of other settings is refused."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from sepclean.toolkit import TrainSpec, get

EPOCHS = 4


def command(data, output: Path, *extra) -> list[str]:
    return [sys.executable, "-m", "sepclean_plugins.openunmix.train", "--manifest", str(data.manifests["train"]),
            "--valid-manifest", str(data.manifests["valid"]), "--target", "vocals", "--output", str(output),
            "--preset", "tiny", "--hidden-size", "16", "--epochs", str(EPOCHS), "--epoch-updates", "3", "--no-cuda",
            "--quiet", *extra]


def epochs_done(output: Path) -> int:
    try:
        return json.loads((output / "vocals.json").read_text())["epochs_trained"]
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def weights(output: Path) -> dict:
    return torch.load(output / "vocals.pth", weights_only=True)


def test_killed_training_resumes_to_the_uninterrupted_weights(tiny_data, tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(command(tiny_data, whole), check=True)

    process = subprocess.Popen(command(tiny_data, killed))
    deadline = time.time() + 300
    while epochs_done(killed) < 1 and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "training finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    stopped_at = epochs_done(killed)
    assert 1 <= stopped_at < EPOCHS

    run = subprocess.run(command(tiny_data, killed), capture_output=True, text=True, check=True)
    assert f"resuming {killed} after epoch" in run.stdout
    assert epochs_done(killed) == EPOCHS
    record_whole = json.loads((whole / "vocals.json").read_text())
    record_killed = json.loads((killed / "vocals.json").read_text())
    assert record_killed["valid_loss_history"] == record_whole["valid_loss_history"]
    for name, tensor in weights(whole).items():
        assert torch.equal(tensor, weights(killed)[name]), name

    # Run once more: it is finished, nothing changes.
    before = (killed / "vocals.pth").read_bytes()
    again = subprocess.run(command(tiny_data, killed), capture_output=True, text=True, check=True)
    assert "has finished" in again.stdout
    assert (killed / "vocals.pth").read_bytes() == before


def test_a_run_killed_before_its_first_record_was_written_resumes(tiny_data, tmp_path):
    """Killed between saving its first training state and writing ``vocals.json`` (the state holds
    the same record), a run resumes; it used to fail with "vocals.json: missing"."""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(command(tiny_data, whole), check=True)
    subprocess.run([*command(tiny_data, killed)[:-6], "--epochs", "1", "--epoch-updates", "3", "--no-cuda", "--quiet"],
                   check=True)
    (killed / "vocals.json").unlink()  # as if killed just before it was written
    run = subprocess.run(command(tiny_data, killed), capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"resuming {killed} after epoch" in run.stdout
    for name, tensor in weights(whole).items():
        assert torch.equal(tensor, weights(killed)[name]), name


def test_a_run_of_other_settings_is_refused_not_overwritten(tiny_data, tmp_path):
    output = tmp_path / "run"
    subprocess.run(command(tiny_data, output), check=True)
    files = {p.name: p.read_bytes() for p in output.iterdir()}
    refused = subprocess.run(command(tiny_data, output, "--lr", "0.01"), capture_output=True, text=True)
    assert refused.returncode == 2
    assert "holds a vocals run with other settings: --lr 0.001 (now 0.01)" in refused.stderr
    assert {p.name: p.read_bytes() for p in output.iterdir()} == files


def test_a_run_begun_before_a_setting_existed_resumes_at_its_default(tiny_data, tmp_path):
    """A record without a setting (written before it was added) stands for the setting's default: the
    run resumes; asked for another value now, it is refused naming the setting (it used to be refused
    either way: "--robust-relative None (now False)")."""
    run = tmp_path / "run"
    subprocess.run([*command(tiny_data, run)[:-6], "--epochs", "1", "--epoch-updates", "3", "--no-cuda", "--quiet"],
                   check=True)
    record = json.loads((run / "vocals.json").read_text())
    del record["args"]["robust_relative"]
    (run / "vocals.json").write_text(json.dumps(record))
    refused = subprocess.run(command(tiny_data, run, "--robust-relative"), capture_output=True, text=True)
    assert refused.returncode == 2 and "--robust-relative False (now True)" in refused.stderr, refused.stderr[-2000:]
    resumed = subprocess.run(command(tiny_data, run), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming {run} after epoch 1" in resumed.stdout


def test_toolkit_train_trains_each_target_and_reports_what_it_trained_on(tiny_data, tmp_path):
    spec = TrainSpec(train=tiny_data.manifests["train"], valid=tiny_data.manifests["valid"], targets=("vocals", "bass"),
                     preset="tiny", overrides={"hidden_size": 8}, epochs=2, epoch_updates=2, device="cpu", quiet=True)
    result = get("openunmix").train(spec, tmp_path / "model")
    assert sorted(result.tracks) == ["bass", "vocals"]
    assert result.tracks["vocals"] == tiny_data.manifest("train").ids
    assert result.epochs == {"vocals": 2, "bass": 2}
    history = json.loads((tmp_path / "model" / "bass.json").read_text())
    assert history["args"]["epoch_updates"] == 2 and history["args"]["hidden_size"] == 8
    # Each epoch made exactly epoch_updates optimizer steps, whatever the number of tracks.
    state = torch.load(tmp_path / "model" / "bass.chkpnt", weights_only=True)
    assert next(iter(state["optimizer"]["state"].values()))["step"].item() == 2 * 2
