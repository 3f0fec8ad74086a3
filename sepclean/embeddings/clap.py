"""LAION CLAP audio embeddings (HTSAT audio encoder, 48 kHz, 512-d), as fadtk's ``clap-laion-*``.

One embedding per 10 s window, windows every second (``hop_seconds``): a 1 frame/s sequence of
unit-norm projected embeddings. Songs shorter than a window are repeat-padded, as CLAP was trained.

Two ways to the same model:

- a transformers folder (``ClapModel.save_pretrained`` layout, e.g. ``laion/larger_clap_music`` in
  the Hugging Face cache): loaded with ``ClapAudioModelWithProjection``, so the text tower's weights
  are never read;
- a LAION-CLAP ``.pt`` checkpoint (e.g. ``music_audioset_epoch_15_esc_90.14.pt``, the one fadtk's
  ``clap-laion-music`` uses): loaded through the laion-clap package, see :mod:`.clap_laion`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from sepclean.embeddings.base import EmbeddingBackend, WeightsNotFoundError, default_device
from sepclean.embeddings.clap_input import SAMPLE_RATE, WINDOW_SECONDS, framing
from sepclean.embeddings.weights import hub_offline, identity, resolve

DEFAULT_WEIGHTS = "laion/larger_clap_music"


class TransformersClap(EmbeddingBackend):
    name = "clap"

    def __init__(self, folder: Path, device: str | torch.device | None = None, hop_seconds: float = 1.0):
        from transformers import ClapAudioModelWithProjection, ClapFeatureExtractor
        from transformers.utils import logging

        self.folder, self.hop_seconds = Path(folder), hop_seconds
        self.device = default_device(device)
        verbosity = logging.get_verbosity()
        logging.set_verbosity_error()  # the text tower's weights are expected to be left out
        try:
            with hub_offline():
                self.model, info = ClapAudioModelWithProjection.from_pretrained(
                    self.folder, local_files_only=True, output_loading_info=True
                )
                self.features = ClapFeatureExtractor.from_pretrained(self.folder, local_files_only=True)
        except (OSError, ValueError) as e:
            raise WeightsNotFoundError(f"{self.folder} is not a transformers CLAP folder: {e}") from None
        finally:
            logging.set_verbosity(verbosity)
        if info["missing_keys"]:
            raise WeightsNotFoundError(
                f"{self.folder}: CLAP audio weights missing from the checkpoint: {sorted(info['missing_keys'])[:5]}"
            )
        if self.features.sampling_rate != SAMPLE_RATE:
            raise WeightsNotFoundError(f"{self.folder}: CLAP feature extractor at {self.features.sampling_rate} Hz")
        self.model.eval().to(self.device)
        self.sample_rate, self.dim = SAMPLE_RATE, self.model.config.projection_dim
        self.framing = framing(hop_seconds)
        # Windows never exceed CLAP's input length, so nothing is ever "longer" (the extractor
        # would otherwise flag a random clip of every batch to exercise the fusion branch).
        self.truncation = "fusion" if self.model.config.enable_fusion else "rand_trunc"

    def config(self) -> dict:
        return {
            "implementation": "transformers",
            "weights": identity(self.folder),
            "window_seconds": WINDOW_SECONDS,
            "hop_seconds": self.hop_seconds,
        }

    @torch.inference_mode()
    def embed(self, chunks: torch.Tensor) -> torch.Tensor:
        inputs = self.features(
            list(chunks.numpy()),
            sampling_rate=SAMPLE_RATE,
            return_tensors="pt",
            truncation=self.truncation,
            padding="repeatpad",
        )
        is_longer = torch.zeros(len(chunks), 1, dtype=torch.bool, device=self.device)
        output = self.model(input_features=inputs["input_features"].to(self.device), is_longer=is_longer)
        return F.normalize(output.audio_embeds, dim=-1)[:, None].float().cpu()


def create(weights: str | None = None, device: str | None = None, hop_seconds: float = 1.0) -> EmbeddingBackend:
    """CLAP from a transformers folder or HF repo id, or from a LAION-CLAP ``.pt`` checkpoint file."""
    path = resolve(weights or DEFAULT_WEIGHTS, "CLAP")
    if path.is_file():
        from sepclean.embeddings.clap_laion import LaionClap

        return LaionClap(path, device=device, hop_seconds=hop_seconds)
    return TransformersClap(path, device=device, hop_seconds=hop_seconds)

