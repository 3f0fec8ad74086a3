"""LAION CLAP through the laion-clap package, from a local ``.pt`` checkpoint.

laion-clap's own entry point is unusable offline: ``import laion_clap`` fetches three tokenizers
from the Hugging Face Hub, and ``CLAP_Module()`` downloads roberta-base to build the text tower.
Audio embeddings need neither. The package is imported with the Hub switched off (transformers then
leaves the tokenizers empty instead of retrying the network), and the model is laion-clap's own
``CLAP`` built with a one-layer local text tower that is never used; only the audio branch and its
projection are read from the checkpoint. The HTSAT size and feature fusion are read from the
checkpoint's shapes and keys.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch

from sepclean import checkpoints
from sepclean.embeddings import clap_input
from sepclean.embeddings.base import EmbeddingBackend, EmbeddingError, WeightsNotFoundError, default_device
from sepclean.embeddings.weights import hub_offline, identity

AUDIO_WEIGHTS = ("audio_branch.", "audio_projection.")
HTSAT_SIZES = {96: "tiny", 128: "base", 256: "large"}  # patch embedding width -> laion-clap config
# laion-clap's CLAP always builds a text tower; its "transformer" kind is the only one built from
# a config alone. One tiny layer, never run.
TEXT_TOWER = {"context_length": 1, "vocab_size": 1, "width": 8, "heads": 1, "layers": 1, "model_type": "transformer"}


def import_laion_clap():
    """``laion_clap``, imported without touching the network."""
    with hub_offline():
        try:
            import laion_clap
        except OSError as e:  # transformers < 5 raises on tokenizers missing from the cache
            raise EmbeddingError(
                f"laion_clap could not be imported offline ({e}); it loads the bert-base-uncased, roberta-base "
                "and facebook/bart-base tokenizers at import: put them in the Hugging Face cache, or use a "
                "transformers CLAP folder (--weights laion/larger_clap_music)"
            ) from None
    return laion_clap


def audio_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The audio branch and projection weights of a LAION-CLAP checkpoint."""
    # LAION's released checkpoints hold training state as numpy scalars beside the weights.
    checkpoint = checkpoints.load(path, WeightsNotFoundError, checkpoints.NUMPY_SCALARS)
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise WeightsNotFoundError(f"{path} holds no state dict")
    state = {key.removeprefix("module."): value for key, value in state.items()}
    return {key: value for key, value in state.items() if key.startswith(AUDIO_WEIGHTS)}


class LaionClap(EmbeddingBackend):
    name = "clap"

    def __init__(self, checkpoint: Path, device: str | torch.device | None = None, hop_seconds: float = 1.0):
        laion_clap = import_laion_clap()
        from laion_clap.clap_module.model import CLAP

        self.checkpoint, self.hop_seconds = Path(checkpoint), hop_seconds
        self.device = default_device(device)

        state = audio_state_dict(self.checkpoint)
        patch_embedding = state.get("audio_branch.patch_embed.proj.weight")
        if patch_embedding is None or patch_embedding.shape[0] not in HTSAT_SIZES:
            raise WeightsNotFoundError(f"{self.checkpoint} is not a LAION-CLAP HTSAT checkpoint")
        self.amodel = f"HTSAT-{HTSAT_SIZES[patch_embedding.shape[0]]}"
        self.fusion = any(".fusion_model." in key for key in state)
        configs = resources.files(laion_clap) / "clap_module" / "model_configs"
        model_config = json.loads((configs / f"{self.amodel}.json").read_text())
        self.audio_config = model_config["audio_cfg"]
        self.model = CLAP(
            embed_dim=model_config["embed_dim"],
            audio_cfg=self.audio_config,
            text_cfg=TEXT_TOWER,
            enable_fusion=self.fusion,
            fusion_type="aff_2d" if self.fusion else "None",  # laion-clap's choice for its fused models
        )
        expected = {key for key in self.model.state_dict() if key.startswith(AUDIO_WEIGHTS)}
        if expected != state.keys():
            missing, unexpected = sorted(expected - state.keys()), sorted(state.keys() - expected)
            raise WeightsNotFoundError(
                f"{self.checkpoint} does not match laion-clap's {self.amodel}: "
                f"missing {missing[:3]}, unexpected {unexpected[:3]}"
            )
        self.model.load_state_dict(state, strict=False)
        self.model.eval().to(self.device)
        self.sample_rate, self.dim = clap_input.SAMPLE_RATE, self.model.joint_embed_shape
        self.framing = clap_input.framing(hop_seconds)

    def config(self) -> dict:
        return {
            "implementation": "laion_clap",
            "amodel": self.amodel,
            "fusion": self.fusion,
            "weights": identity(self.checkpoint),
            "window_seconds": clap_input.WINDOW_SECONDS,
            "hop_seconds": self.hop_seconds,
        }

    @torch.inference_mode()
    def embed(self, chunks: torch.Tensor) -> torch.Tensor:
        from laion_clap.training.data import float32_to_int16, get_audio_features, int16_to_float32

        # laion-clap's own preprocessing (get_audio_embedding_from_data): int16 quantisation, then
        # repeat-padding to the 10 s input.
        samples = [
            get_audio_features(
                {},
                torch.from_numpy(int16_to_float32(float32_to_int16(chunk))),
                self.framing.chunk,
                data_truncating="fusion" if self.fusion else "rand_trunc",
                data_filling="repeatpad",
                audio_cfg=self.audio_config,
            )
            for chunk in chunks.numpy()
        ]
        return self.model.get_audio_embedding(samples)[:, None].float().cpu()
