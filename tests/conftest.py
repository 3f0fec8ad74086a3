"""Shared fixtures: one tiny synthetic dataset per test session, with manifests for every split."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Tests never reach a model hub: loading code must take local paths and the HF cache only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Embedding caches of the tests stay out of the user's cache.
os.environ["SEPCLEAN_CACHE"] = tempfile.mkdtemp(prefix="sepclean-test-cache-")
# The dora folder (and its artifact store) of code run without one stays out of the working tree:
# this one for module- and session-wide fixtures; every test gets its own (``own_dora_dir``).
os.environ["SEPCLEAN_DORA_DIR"] = tempfile.mkdtemp(prefix="sepclean-test-dora-")

import pytest  # noqa: E402

from sepclean.manifest import Manifest  # noqa: E402


def pytest_configure(config):
    # pytest-xdist runs one worker per core: one thread each avoids oversubscription.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def own_dora_dir(tmp_path_factory, monkeypatch):
    """A dora folder per test (outside its ``tmp_path``), so that what one test's commands make in
    the default artifact store (``sepclean score`` makes its tables in ``$SEPCLEAN_DORA_DIR/artifacts``)
    is never found by another; tests that need a particular folder still set their own."""
    monkeypatch.setenv("SEPCLEAN_DORA_DIR", str(tmp_path_factory.mktemp("dora")))


@dataclass
class SynthData:
    root: Path
    manifests: dict[str, Path]  # split -> manifest path

    def manifest(self, split: str) -> Manifest:
        return Manifest.load(self.manifests[split])

    @property
    def contamination(self) -> dict:
        from sepclean.detection import load_contamination

        return load_contamination(self.root)


def make_synth_data(root: Path, **generate_options) -> SynthData:
    from sepclean.scan import scan
    from sepclean.synth import CLEAN_TWIN, SPLITS, generate_dataset

    options = dict(preset="mixed23", profile="tiny", seed=0, workers=1)
    generate_dataset(root / "data", **{**options, **generate_options})
    manifests = {}
    for split in (*SPLITS, CLEAN_TWIN):
        manifest, problems = scan([root / "data" / split], progress=False, workers=1)
        assert not problems, problems
        manifests[split] = root / "manifests" / f"{split}.jsonl"
        manifest.write(manifests[split])
    return SynthData(root / "data", manifests)


def tree_state(*roots) -> dict:
    """Every file under ``roots``: size, mtime and SHA-256. Equal before and after = untouched."""
    state = {}
    for root in map(Path, roots):
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            stat = path.stat()
            state[str(path)] = (stat.st_size, stat.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    return state


def copy_splits(data: SynthData, dest: Path, *splits: str) -> SynthData:
    """A writable copy of some splits of a dataset, with their own manifests, for planting faults."""
    from sepclean.scan import scan

    manifests = {}
    for split in splits:
        shutil.copytree(data.root / split, dest / "data" / split)
        manifest, problems = scan([dest / "data" / split], progress=False, workers=1)
        assert not problems, problems
        manifests[split] = dest / "manifests" / f"{split}.jsonl"
        manifest.write(manifests[split])
    return SynthData(dest / "data", manifests)


def read_only(directory: Path, argv: list[str]) -> subprocess.CompletedProcess:
    """Run ``argv`` with ``directory`` on a read-only file system (a bind mount in a private mount
    namespace, so even root cannot write there); skips the test where namespaces are not allowed."""
    mount = f"mount --bind {directory} {directory} && mount -o remount,ro,bind {directory} {directory}"
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"{mount} && ! touch {directory}/.probe"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a read-only mount here: {probe.stderr.strip()}")
    script = f'{mount} && exec "$@"'
    return subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", *argv], capture_output=True, text=True,
                          timeout=600)


def full_disk(directory: Path, argv: list[str], room_kib: int = 0) -> subprocess.CompletedProcess:
    """Run ``argv`` with a small empty file system at ``directory`` (a tmpfs of ``room_kib`` KiB in
    a private mount namespace; 0: one filled up before ``argv`` starts); skips the test where
    namespaces are not allowed."""
    directory.mkdir(parents=True, exist_ok=True)
    mount = f"mount -t tmpfs -o size={max(room_kib, 4)}k tmpfs {directory}"
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", mount], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {probe.stderr.strip()}")
    fill = "" if room_kib else f" && {{ cat /dev/zero > {directory}/.filler 2>/dev/null || true; }}"
    return subprocess.run(["unshare", "-rm", "sh", "-c", f'{mount}{fill} && exec "$@"', "sh", *argv],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> SynthData:
    """The tiny mixed23 profile (seed 0): read-only, shared by every test of the session."""
    return make_synth_data(tmp_path_factory.mktemp("tiny"))


class Payload:
    """What a malicious checkpoint carries: unpickling it in full runs ``touch marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def umx(tiny_data, tmp_path_factory):
    """A baseline Open-Unmix (vocals and bass) trained briefly on the noisy tiny pool, its weights of
    epoch 1 kept beside the final ones (what attribution tests unlearn from)."""
    from sepclean_plugins.openunmix.train import main as train_umx

    output = tmp_path_factory.mktemp("umx_dirty")
    for target in ("vocals", "bass"):
        argv = ["--manifest", str(tiny_data.manifests["train"]), "--valid-manifest", str(tiny_data.manifests["valid"]),
                "--target", target, "--epochs", "2", "--hidden-size", "16", "--output", str(output),
                "--preset", "tiny", "--quiet", "--save-every", "1"]
        assert train_umx(argv) == 0
    return output
