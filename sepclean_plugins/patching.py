"""Attribute replacements in a toolkit's modules, installed together and undone together.

Each plugin's ``audio_compat`` module says what it replaces and why; this only keeps the originals.
"""

from __future__ import annotations

_ABSENT = object()


class Patches:
    def __init__(self):
        self._originals: dict[tuple[object, str], object] = {}

    def install(self, replacements) -> None:
        """Set each ``(module, name, replacement)`` (idempotent: the first original is kept)."""
        for module, name, replacement in replacements:
            self._originals.setdefault((module, name), getattr(module, name, _ABSENT))
            setattr(module, name, replacement)

    def uninstall(self) -> None:
        """Restore every original (an attribute that did not exist is removed again)."""
        for (module, name), original in self._originals.items():
            if original is _ABSENT:
                delattr(module, name)
            else:
                setattr(module, name, original)
        self._originals.clear()
