"""What both CLAP backends (:mod:`.clap`, :mod:`.clap_laion`) feed the model: 48 kHz audio in 10 s
windows, one window per hop."""

from __future__ import annotations

from sepclean.embeddings.base import Framing

SAMPLE_RATE = 48000
WINDOW_SECONDS = 10.0  # CLAP's input length


def framing(hop_seconds: float) -> Framing:
    window, hop = int(WINDOW_SECONDS * SAMPLE_RATE), round(hop_seconds * SAMPLE_RATE)
    return Framing(chunk=window, chunk_hop=hop, frame_hop=hop, frame_span=window)
