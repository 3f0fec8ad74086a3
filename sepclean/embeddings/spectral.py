"""The built-in, weight-free backend: log-mel spectrogram frames.

Each frame is the power spectrum of a Hann-windowed 2048-sample frame at 44.1 kHz (hop 1024,
about 43 frames/s) on 64 Slaney mel bands from 20 Hz to 20 kHz, in dB. It knows nothing about
music: it sees timbre, level and spectral balance, which is what label noise, bleeding, filtering
and distortion change. Chunks overlap by ``n_fft - hop`` samples so that chunked frames are exactly
the frames of the whole song.
"""

from __future__ import annotations

import torch
import torchaudio.functional as AF

from sepclean.embeddings.base import EmbeddingBackend, Framing, default_device

VERSION = 1  # bump when the features change: it keys the embedding cache


class LogMel(EmbeddingBackend):
    name = "spectral"

    def __init__(
        self,
        device: str | torch.device | None = "cpu",
        sample_rate: int = 44100,
        n_fft: int = 2048,
        hop_length: int = 1024,
        n_mels: int = 64,
        f_min: float = 20.0,
        f_max: float = 20000.0,
        chunk_frames: int = 1292,
    ):
        self.device = default_device(device)
        self.sample_rate, self.n_fft, self.hop_length = sample_rate, n_fft, hop_length
        self.n_mels, self.f_min, self.f_max = n_mels, f_min, min(f_max, sample_rate / 2)
        self.dim = n_mels
        self.framing = Framing(
            chunk=(chunk_frames - 1) * hop_length + n_fft,
            chunk_hop=chunk_frames * hop_length,
            frame_hop=hop_length,
            frame_span=n_fft,
        )
        self.window = torch.hann_window(n_fft, device=self.device)
        self.filters = AF.melscale_fbanks(
            n_fft // 2 + 1, self.f_min, self.f_max, n_mels, sample_rate, norm="slaney", mel_scale="slaney"
        ).to(self.device)

    def config(self) -> dict:
        return {
            "features": "log-mel",
            "version": VERSION,
            "sample_rate": self.sample_rate,
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "n_mels": self.n_mels,
            "f_min": self.f_min,
            "f_max": self.f_max,
        }

    @torch.inference_mode()
    def embed(self, chunks: torch.Tensor) -> torch.Tensor:
        if chunks.shape[-1] < self.n_fft:
            return chunks.new_zeros(chunks.shape[0], 0, self.dim)
        spec = torch.stft(
            chunks.to(self.device),
            self.n_fft,
            self.hop_length,
            window=self.window,
            center=False,
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()  # (batch, freqs, frames)
        mel = torch.einsum("bft,fm->btm", power, self.filters)
        return (10 * torch.log10(mel.clamp_min(1e-10))).cpu()


def create(device: str | None = None) -> LogMel:
    return LogMel(device=device or "cpu")
