"""MERT-v1-95M hidden states (24 kHz, 768-d, 75 frames/s), one layer, as fadtk's ``MERT-v1-95M``.

MERT is HuBERT-shaped: a convolutional front end (hop 320 samples, receptive field 400) and a
transformer whose 13 hidden states (the input embedding and 12 layers) are all exposed; fadtk uses
the last one, and so does sepclean by default (``layer``). Its checkpoint needs its own modelling
code (``trust_remote_code``), read from the local folder or the Hugging Face cache; any HuBERT-like
transformers folder with a ``preprocessor_config.json`` works the same way.

fadtk feeds up to six minutes at once; sepclean embeds 10 s chunks (MERT was trained on 5 s crops),
which bounds memory and lets songs share batches. The feature extractor normalises each chunk.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from sepclean.embeddings.base import EmbeddingBackend, EmbeddingError, Framing, WeightsNotFoundError, default_device
from sepclean.embeddings.weights import hub_offline, identity, resolve

DEFAULT_WEIGHTS = "m-a-p/MERT-v1-95M"


class Mert(EmbeddingBackend):
    name = "mert"

    def __init__(
        self,
        folder: Path,
        layer: int | None = None,
        device: str | torch.device | None = None,
        chunk_seconds: float = 10.0,
    ):
        from transformers import AutoFeatureExtractor, AutoModel

        self.folder = Path(folder)
        self.device = default_device(device)
        try:
            # MERT's modelling code ships with its checkpoint; a plain HuBERT folder needs none.
            with hub_offline():
                self.model = AutoModel.from_pretrained(self.folder, trust_remote_code=True, local_files_only=True)
                self.features = AutoFeatureExtractor.from_pretrained(self.folder, local_files_only=True)
        except (OSError, ValueError) as e:
            raise WeightsNotFoundError(f"{self.folder} is not a MERT/HuBERT transformers folder: {e}") from None
        except ImportError as e:  # MERT-v1's modelling code imports nnAudio
            raise EmbeddingError(f"the modelling code in {self.folder} cannot be imported: {e}") from None
        self.model.eval().to(self.device)

        config = self.model.config
        layers = config.num_hidden_layers + 1  # hidden_states[0] is the input to the first layer
        if layer is None:
            layer = layers - 1
        if not -layers <= layer < layers:
            raise EmbeddingError(f"--layer {layer} out of range: {self.folder} has hidden states 0..{layers - 1}")
        self.layer = layer % layers
        self.sample_rate, self.dim = int(self.features.sampling_rate), config.hidden_size
        hop = math.prod(config.conv_stride)
        span, jump = 1, 1
        for kernel, stride in zip(config.conv_kernel, config.conv_stride):
            span, jump = span + (kernel - 1) * jump, jump * stride
        chunk = round(chunk_seconds * self.sample_rate / hop) * hop
        self.chunk_seconds = chunk / self.sample_rate
        self.framing = Framing(chunk=chunk, chunk_hop=chunk, frame_hop=hop, frame_span=span)

    def config(self) -> dict:
        return {
            "weights": identity(self.folder),
            "layer": self.layer,
            "chunk_seconds": self.chunk_seconds,
            "normalize": bool(getattr(self.features, "do_normalize", False)),
        }

    @torch.inference_mode()
    def embed(self, chunks: torch.Tensor) -> torch.Tensor:
        if chunks.shape[-1] < self.framing.frame_span:
            return chunks.new_zeros(chunks.shape[0], 0, self.dim)
        inputs = self.features(list(chunks.numpy()), sampling_rate=self.sample_rate, return_tensors="pt")
        output = self.model(inputs["input_values"].to(self.device), output_hidden_states=True)
        return output.hidden_states[self.layer].float().cpu()


def create(weights: str | None = None, layer: int | None = None, device: str | None = None) -> Mert:
    return Mert(resolve(weights or DEFAULT_WEIGHTS, "MERT"), layer=layer, device=device)
