"""Finding model weights on this machine, never on the network.

Weights are a local path or a Hugging Face repo id that is already in the local Hugging Face cache
(``HF_HOME`` / ``HF_HUB_CACHE``). Nothing is downloaded at run time: a missing model is an error
that says how to fetch it once, so a machine without network never hangs on retries.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
from pathlib import Path

from sepclean.audio import file_hash
from sepclean.embeddings.base import WeightsNotFoundError

_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def resolve(weights: str | Path, what: str) -> Path:
    """The local file or folder holding ``weights``: the path itself, or the cached snapshot of a
    Hugging Face repo id. ``what`` names the model in the error message."""
    path = Path(weights).expanduser()
    if path.exists():
        return path
    repo_id = str(weights)
    if _REPO_ID.match(repo_id) and not repo_id.startswith("."):
        from huggingface_hub import constants, snapshot_download

        try:
            return Path(snapshot_download(repo_id, local_files_only=True))
        except (FileNotFoundError, ValueError):
            pass
        raise WeightsNotFoundError(
            f"{what} weights not found: {repo_id!r} is not a local path and is not in the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}). sepclean never downloads at run time: fetch it once where there is "
            f"network with `hf download {repo_id}` (same HF_HOME), or pass --weights /path/to/its/folder."
        )
    raise WeightsNotFoundError(f"{what} weights not found: no such file or folder {str(path)!r}")


@functools.lru_cache(maxsize=16)
def identity(path: Path) -> str:
    """Content identity of a weights file or folder (SHA-256 over its files), for the cache key.
    A Hugging Face snapshot is identified by its commit, which already names its content."""
    path = Path(path)
    if path.is_dir() and path.parent.name == "snapshots" and re.fullmatch(r"[0-9a-f]{40}", path.name):
        return f"hf:{path.parent.parent.name}@{path.name}"
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.relative_to(path) if path.is_dir() else file.name}\0{file_hash(file)}\n".encode())
    return digest.hexdigest()


@contextlib.contextmanager
def hub_offline():
    """Refuse every Hugging Face Hub request inside the block.

    huggingface_hub reads ``HF_HUB_OFFLINE`` once, when first imported, and consults the resulting
    module constant at each request; setting the environment variable later has no effect, so the
    constant itself is switched for the duration.
    """
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved
