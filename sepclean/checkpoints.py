"""Reading torch files a user receives without running code from them.

``torch.load(weights_only=True)`` unpickles tensors and plain containers only; a caller allows
exactly the classes its files need beyond that (demucs' model classes, an OmegaConf config, numpy
scalars). Anything else in a file is refused with an error naming it, never unpickled in full.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import torch

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
