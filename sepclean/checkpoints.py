"""Reading torch files and pickles a user receives without running code from them.

``torch.load(weights_only=True)`` unpickles tensors and plain containers only; a caller allows
exactly the classes its files need beyond that (demucs' model classes, an OmegaConf config, numpy
scalars). Plain pickles (dora's ``job.pkl``) go through ``load_pickle``, which resolves only the
globals its caller names. Anything else in a file is refused with an error naming it, never
unpickled in full.
"""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path

import numpy as np
import torch

from sepclean import files
from sepclean.errors import SepcleanError

NUMPY_SCALARS = [np.core.multiarray.scalar, np.dtype,
                 *{type(np.dtype(kind)) for kind in (bool, "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8",
                                                      "f2", "f4", "f8")}]
"""What pickled numpy scalars (training statistics kept as ``np.float64``...) need."""


def load(path, error: type[SepcleanError], allowed=(), map_location="cpu"):
    """The object in a torch file, weights-only with ``allowed`` globals; problems raise ``error``."""
    path = Path(path)
    try:
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise error(f"{path}: missing") from None
    except pickle.UnpicklingError as e:
        refused = re.search(r"GLOBAL (\S+) (was not an allowed global|whose module \S+ is blocked)", str(e))
        if refused:
            raise error(f"{path}: refused to load: it names {refused[1]}, which is neither a tensor, a plain "
                        "container nor a class allowed here; sepclean never unpickles arbitrary objects from a "
                        "file (they can run code)") from None
        detail = re.search(r"WeightsUnpickler error:\s*(.*?)\s*(\n\n|$)", str(e), re.S)
        raise error(f"{path}: not a readable torch checkpoint, or it holds more than weights "
                    f"({detail[1] if detail else 'UnpicklingError'})") from None
    except Exception as e:  # torch raises many types on corrupt files (RuntimeError, EOFError, ...)
        raise error(f"{path}: not a readable torch checkpoint ({type(e).__name__}: {e})") from None


def save(path, obj) -> None:
    """``torch.save(obj)`` to ``path``, whole or not at all (``files.atomic_write``): a full or read-only
    disk is an ``OutputError`` naming ``path``. torch writing to a full disk itself raises a
    RuntimeError from its zip writer (``inline_container.cc ... unexpected pos``) that names neither
    the file nor the cause, so the file is made in memory first."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    files.atomic_write(path, buffer.getvalue())


class _AllowListUnpickler(pickle.Unpickler):
    def __init__(self, file, allowed: set[tuple[str, str]]):
        super().__init__(file)
        self.allowed = allowed

    def find_class(self, module, name):
        if (module, name) not in self.allowed:
            raise pickle.UnpicklingError(f"GLOBAL {module}.{name} was not an allowed global")
        return super().find_class(module, name)


def load_pickle(path, error: type[SepcleanError], allowed: set[tuple[str, str]]):
    """The object in a pickle whose only globals are ``allowed`` (module, name) pairs; anything else,
    and a damaged file, raise ``error`` naming ``path``. Nothing outside ``allowed`` is imported or
    called, so a planted payload never runs."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return _AllowListUnpickler(f, allowed).load()
    except FileNotFoundError:
        raise error(f"{path}: missing") from None
    except pickle.UnpicklingError as e:
        refused = re.match(r"GLOBAL (\S+) was not an allowed global", str(e))
        if refused:
            raise error(f"{path}: refused to load: it names {refused[1]}, which is not a class allowed in this "
                        "file; sepclean never unpickles arbitrary objects from a file (they can run code)") from None
        raise error(f"{path}: not a readable pickle ({e})") from None
    except Exception as e:  # a truncated or garbled pickle raises EOFError, ValueError, KeyError, ...
        raise error(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from None
