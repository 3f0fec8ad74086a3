"""Open-Unmix trains from a typed config: each setting declared once (the command line is made from
it), the adapter's TrainSpec becomes one without a command line, manifests are read once, and the
artifact key of a training stays what it was."""

from __future__ import annotations

import ast
import collections
import dataclasses
import inspect
import json
from pathlib import Path

import pytest

from sepclean.clean_manifest import CleanManifest
from sepclean.manifest import Manifest
from sepclean.pipeline import stages
from sepclean.pipeline.artifacts import ArtifactStore
from sepclean.robust import RobustLoss
from sepclean.toolkit import ToolkitError, TrainSpec, get
from sepclean_plugins.openunmix import adapter, train
from sepclean_plugins.openunmix.config import OPTIONS, TrainingConfig
from sepclean_plugins.openunmix.presets import PRESETS


def test_every_setting_is_an_option_whose_default_is_the_dataclass_default():
    parsed = vars(train.build_parser([]).parse_args([]))
    declared = TrainingConfig()
    assert list(parsed) == list(OPTIONS)
    for setting in dataclasses.fields(TrainingConfig):
        if setting.name in OPTIONS:
            assert parsed[setting.name] == getattr(declared, setting.name), setting.name
    assert TrainingConfig(**parsed) == declared


def test_every_option_is_documented_by_its_docstring(capsys):
    with pytest.raises(SystemExit):
        train.build_parser(["--help"]).parse_args()
    usage = " ".join(capsys.readouterr().out.split())
    for name in OPTIONS:
        assert f"--{name.replace('_', '-')}" in usage
    assert "--robust-relative truncation and masking rank the loss relative to the target's energy" in usage
    assert "--epochs EPOCHS total number of epochs (default: 1000)" in usage


def test_a_preset_sets_defaults_that_given_options_override():
    args = train.build_parser([], TrainingConfig.of("tiny")).parse_args(["--hidden-size", "16"])
    assert args.hidden_size == 16 and args.nfft == PRESETS["tiny"]["nfft"] and args.epochs == PRESETS["tiny"]["epochs"]
    with pytest.raises(ToolkitError, match="unknown preset 'huge'"):
        TrainingConfig.of("huge")


def test_settings_are_typed_as_the_command_line_reads_them():
    config = TrainingConfig.of(lr=1, seq_dur="2", output=Path("run"), source_augmentations=("gain", "channelswap"))
    assert config.lr == 1.0 and isinstance(config.lr, float) and config.seq_dur == 2.0 and config.output == "run"
    assert config.source_augmentations == ["gain", "channelswap"]
    with pytest.raises(ToolkitError, match="unknown Open-Unmix training setting\\(s\\): hidden"):
        TrainingConfig.of(hidden=8)
    with pytest.raises(ToolkitError, match="setting epochs: expected int, got 2.5"):
        TrainingConfig.of(epochs=2.5)


@pytest.mark.parametrize("settings, error", [
    (dict(epochs=0), "--epochs must be at least 1; got 0"),
    (dict(batch_size=-2), "--batch-size must be at least 1; got -2"),
    (dict(manifest="a.jsonl"), "--manifest needs --valid-manifest"),
    (dict(manifest="a.jsonl", valid_manifest="b.jsonl", root="/data"), "alternatives"),
    (dict(valid_manifest="b.jsonl"), "go with --manifest"),
])
def test_impossible_settings_are_refused_when_the_config_is_made(settings, error):
    with pytest.raises(ToolkitError, match=error):
        TrainingConfig(**settings)


def test_the_adapter_config_is_the_command_lines(tiny_data, tmp_path):
    clean = tmp_path / "clean.json"
    spec = TrainSpec(train=tiny_data.manifests["train"], valid=tiny_data.manifests["valid"], clean=clean, preset="tiny",
                     overrides={"hidden_size": 8, "unidirectional": True}, epochs=3, epoch_updates=2, seed=1,
                     device="cpu", quiet=True, robust=RobustLoss(truncate=0.25, warmup=1, relative=True))
    argv = ["--manifest", str(spec.train), "--valid-manifest", str(spec.valid), "--clean-manifest", str(clean),
            "--target", "bass", "--output", str(tmp_path / "run"), "--preset", "tiny", "--hidden-size", "8",
            "--unidirectional", "--epochs", "3", "--epoch-updates", "2", "--seed", "1", "--no-cuda", "--quiet",
            "--loss-truncation", "0.25", "--robust-warmup", "1", "--robust-relative"]
    parsed = train.build_parser(argv, TrainingConfig.of("tiny")).parse_args()
    assert adapter.training_config(spec, "bass", tmp_path / "run") == TrainingConfig(**vars(parsed))


def test_adapter_and_trainer_do_not_import_each_other():
    def imported(module) -> set[str]:
        names = set()
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if isinstance(node, ast.ImportFrom):
                names |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
            elif isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
        return names

    assert "sepclean_plugins.openunmix.adapter" not in imported(train)
    assert "sepclean_plugins.openunmix.train" in imported(adapter)


def test_the_manifests_are_read_once_for_a_training(tiny_data, tmp_path, monkeypatch):
    manifest = tiny_data.manifest("train")
    clean = tmp_path / "clean.json"
    CleanManifest(keep=manifest.ids[:6], dataset_hash=manifest.hash).write(clean)
    reads = collections.Counter()
    for cls in (Manifest, CleanManifest):
        monkeypatch.setattr(cls, "load", lambda path, load=cls.load: reads.update([Path(path).name]) or load(path))
    spec = TrainSpec(train=tiny_data.manifests["train"], valid=tiny_data.manifests["valid"], clean=clean,
                     targets=("vocals", "bass"), preset="tiny", overrides={"hidden_size": 8}, epochs=1,
                     epoch_updates=1, device="cpu", quiet=True)
    result = get("openunmix").train(spec, tmp_path / "model")
    assert result.tracks == {"vocals": manifest.ids[:6], "bass": manifest.ids[:6]}
    assert reads == {"train.jsonl": 1, "valid.jsonl": 1, "clean.json": 1}
    recorded = json.loads((tmp_path / "model" / "bass.json").read_text())["args"]
    assert recorded == adapter.training_config(spec, "bass", tmp_path / "model").recorded()


def test_the_artifact_key_of_a_training_is_pinned():
    """Models trained before the config existed keep their key: it is made of the TrainSpec alone."""
    spec = TrainSpec(train=Path("train.jsonl"), valid=Path("valid.jsonl"), clean=Path("clean.json"),
                     targets=("vocals", "bass"), preset="tiny", overrides={"hidden_size": 8}, epochs=40,
                     epoch_updates=10, seed=1, robust=RobustLoss(truncate=0.25, relative=True))
    key = ArtifactStore(Path("store")).key("train", stages.train_config("openunmix", spec), ["0" * 64, "1" * 64, None])
    assert key == "1c3d798282d463c1"
