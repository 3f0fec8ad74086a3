"""Shared fixtures: one tiny synthetic dataset per test session, with manifests for every split."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Tests never reach a model hub: loading code must take local paths and the HF cache only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Embedding caches of the tests stay out of the user's cache.
os.environ["SEPCLEAN_CACHE"] = tempfile.mkdtemp(prefix="sepclean-test-cache-")

import pytest  # noqa: E402

from sepclean.manifest import Manifest  # noqa: E402


def pytest_configure(config):
    # pytest-xdist runs one worker per core: one thread each avoids oversubscription.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


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


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> SynthData:
    """The tiny mixed23 profile (seed 0): read-only, shared by every test of the session."""
    return make_synth_data(tmp_path_factory.mktemp("tiny"))
