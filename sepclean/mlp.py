"""The MLP stem-classifier baseline (paper, section 3.2): a noise-specific method, for comparison.

A frame classifier ``embedding -> 256 -> ReLU -> Dropout 0.5 -> 4`` (vocals, bass, drums, other)
is trained on the non-silent frames of the clean reference stems only. A training stem's score is
the mean probability of its own class over its non-silent frames: a vocals stem that sounds like
drums (label noise) or carries other instruments (bleeding) scores low. A song's unified score is
the mean over its stems. Inputs are standardised with the reference frames' statistics, kept in
the model as buffers, and the loss is class-balanced (stems are not equally often silent).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

import sepclean
from sepclean.embeddings import SongEmbeddings, fill_unscored
from sepclean.manifest import Manifest
from sepclean.scores import ScoresError, ScoreTable, dataset_record


class StemClassifier(nn.Module):
    def __init__(self, dim: int, classes: Sequence[str] = sepclean.STEMS, hidden: int = 256, dropout: float = 0.5):
        super().__init__()
        self.classes = tuple(classes)
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.layers = nn.Sequential(
            nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, len(self.classes))
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Class logits of ``(..., dim)`` frames."""
        return self.layers((frames - self.mean) / self.scale)

    @torch.inference_mode()
    def own_class_probability(self, frames: np.ndarray, stem: str, batch_size: int = 8192) -> float:
        """Mean probability of ``stem``'s class over ``frames`` (eval mode: no dropout)."""
        self.eval()
        device, index = self.mean.device, self.classes.index(stem)
        total = 0.0
        for start in range(0, len(frames), batch_size):
            batch = torch.as_tensor(frames[start : start + batch_size], dtype=torch.float32, device=device)
            total += self(batch).softmax(dim=-1)[:, index].sum().item()
        return total / len(frames)


def train_stem_classifier(
    frames: dict[str, np.ndarray],
    epochs: int = 20,
    lr: float = 1e-3,
    batch_size: int = 256,
    weight_decay: float = 0.0,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> tuple[StemClassifier, dict]:
    """Train on ``{stem: (n, dim) frames}`` with Adam and a class-balanced cross-entropy.
    Returns the model (eval mode) and its training figures (frames and accuracy per class)."""
    classes = list(frames)
    x = torch.as_tensor(np.concatenate([frames[c] for c in classes]), dtype=torch.float32)
    y = torch.cat([torch.full((len(frames[c]),), i, dtype=torch.long) for i, c in enumerate(classes)])
    counts = torch.bincount(y, minlength=len(classes)).float()
    if (counts == 0).any():
        raise ScoresError(f"no reference frames for {[c for c, n in zip(classes, counts) if n == 0]}")

    torch.manual_seed(seed)
    model = StemClassifier(x.shape[1], classes)
    model.mean.copy_(x.mean(dim=0))
    model.scale.copy_(x.std(dim=0).clamp_min(1e-6))
    model.to(device)
    x, y = x.to(device), y.to(device)
    loss_fn = nn.CrossEntropyLoss(weight=(counts.sum() / (len(classes) * counts)).to(device))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in tqdm(range(epochs), desc="MLP training", unit="epoch", disable=not progress):
        for batch in torch.randperm(len(x), generator=generator).to(device).split(batch_size):
            optimizer.zero_grad()
            loss_fn(model(x[batch]), y[batch]).backward()
            optimizer.step()
    model.eval()
    with torch.inference_mode():
        predicted = torch.cat([model(part).argmax(dim=-1) for part in x.split(8192)])
    accuracy = {c: (predicted[y == i] == i).float().mean().item() for i, c in enumerate(classes)}
    return model, {"frames": {c: int(n) for c, n in zip(classes, counts)}, "train_accuracy": accuracy}


def mlp_table(
    train: Manifest,
    reference: Manifest,
    songs: SongEmbeddings,
    stems: Sequence[str] = sepclean.STEMS,
    epochs: int = 20,
    lr: float = 1e-3,
    train_batch_size: int = 256,
    weight_decay: float = 0.0,
    frames_per_song: int | None = 2000,
    min_active_seconds: float = 1.0,
    seed: int = 0,
    batch_size: int = 8,
    progress: bool = True,
) -> ScoreTable:
    """MLP scores of ``train``'s stems, classifier trained on ``reference``'s stems.

    ``frames_per_song`` caps the training frames drawn from each reference stem (at random), which
    bounds memory and keeps long songs from dominating. A stem with too few non-silent frames gets
    the median score of its target (listed in the metadata under ``unscored``).
    """
    for manifest, role in ((train, "train"), (reference, "reference")):
        absent = sorted(set(stems) - set(manifest.stems))
        if absent:
            raise ScoresError(f"the {role} manifest has no {', '.join(absent)} stem")
    songs.compute([*train, *reference], stems, batch_size=batch_size, progress=progress)

    rng = np.random.default_rng(seed)
    training = {}
    for stem in stems:
        parts = [songs.active(track, stem) for track in reference]
        if frames_per_song is not None:
            parts = [p[np.sort(rng.permutation(len(p))[:frames_per_song])] for p in parts]
        training[stem] = np.concatenate(parts)
    device = songs.backend.device
    model, figures = train_stem_classifier(
        training, epochs, lr, train_batch_size, weight_decay, seed=seed, device=device, progress=progress
    )

    min_frames = songs.backend.frames_for(min_active_seconds)
    columns, unscored = {}, {}
    for stem in stems:
        column = {}
        for track in tqdm(train, desc=f"MLP {stem}", unit="song", disable=not progress):
            frames = songs.active(track, stem)
            column[track.id] = model.own_class_probability(frames, stem) if len(frames) >= min_frames else None
        columns[stem], unscored[stem] = fill_unscored(column)

    metadata = {
        "dataset": dataset_record(train),
        "manifests": {"train": train.hash, "reference": reference.hash},
        **songs.describe(),
        "classifier": {"hidden": 256, "dropout": 0.5, "classes": list(stems)},
        "training": {
            "epochs": epochs,
            "lr": lr,
            "batch_size": train_batch_size,
            "weight_decay": weight_decay,
            "frames_per_song": frames_per_song,
            **figures,
        },
        "min_active_frames": min_frames,
        "unscored": {stem: tracks for stem, tracks in unscored.items() if tracks},
        "seed": seed,
        "sepclean": sepclean.__version__,
    }
    return ScoreTable.from_columns("mlp", train.ids, columns, metadata)
