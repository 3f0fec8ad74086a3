"""`--embedding mert` through a checkpoint's own modelling code, as MERT-v1 ships it.

MERT's remote code imports nnAudio at module level; transformers refuses to load it when nnAudio is
missing, so the `mert` extra declares it. The folder built here has code of that shape (a HuBERT
subclass whose module imports nnAudio) and random weights; it loads through sepclean's MERT backend
with trust_remote_code, in a subprocess whose HF_HOME (where transformers copies remote code) is a
temporary folder.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("nnAudio") is None,
    reason="nnAudio is not installed: pip install -e '.[mert]' (MERT's modelling code imports it)",
)

CONFIGURATION = '''
from transformers import HubertConfig


class MERTConfig(HubertConfig):
    model_type = "mert_model"

    def __init__(self, feature_extractor_cqt=False, feature_extractor_cqt_bins=336, **kwargs):
        super().__init__(**kwargs)
        self.feature_extractor_cqt = feature_extractor_cqt
        self.feature_extractor_cqt_bins = feature_extractor_cqt_bins
'''

MODELING = '''
from nnAudio import features as nnAudioFeatures
from transformers import HubertModel

from .configuration_mert import MERTConfig


class MERTModel(HubertModel):
    config_class = MERTConfig

    def __init__(self, config):
        super().__init__(config)
        if config.feature_extractor_cqt:
            self.cqt = nnAudioFeatures.cqt.CQT(sr=24000, hop_length=320, n_bins=config.feature_extractor_cqt_bins)
'''

SCRIPT = '''
import json, sys
from pathlib import Path

import numpy as np
import torch
from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

from sepclean.embeddings import create_backend
from sepclean.embeddings.extract import embed_signals

folder = Path(sys.argv[1])
torch.manual_seed(0)
config = HubertConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                      conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
HubertModel(config).save_pretrained(folder)
Wav2Vec2FeatureExtractor(sampling_rate=24000, do_normalize=True).save_pretrained(folder)
settings = json.loads((folder / "config.json").read_text())
settings.update(model_type="mert_model", architectures=["MERTModel"], feature_extractor_cqt=False,
                auto_map={"AutoConfig": "configuration_mert.MERTConfig", "AutoModel": "modeling_mert.MERTModel"})
(folder / "config.json").write_text(json.dumps(settings))

backend = create_backend("mert", weights=str(folder), device="cpu")
print(type(backend.model).__name__, type(backend.model).__module__)
signal = (0.1 * np.random.default_rng(0).normal(size=3 * 24000)).astype(np.float32)
[(_, embedding)] = embed_signals(backend, [("song", signal)])
print(*embedding.frames.shape)
'''


def test_mert_backend_loads_remote_code_that_imports_nnaudio(tmp_path):
    folder = tmp_path / "mert"
    folder.mkdir()
    (folder / "configuration_mert.py").write_text(textwrap.dedent(CONFIGURATION))
    (folder / "modeling_mert.py").write_text(textwrap.dedent(MODELING))
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(folder)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    name, module = done.stdout.splitlines()[0].split()
    assert name == "MERTModel" and module.startswith("transformers_modules.")  # the folder's own code ran
    frames, dim = map(int, done.stdout.splitlines()[1].split())
    assert dim == 16 and abs(frames - 3 * 75) <= 3
