"""sepclean's Demucs plugin: the toolkit adapter, and Demucs training driven by dora.

    dora -P sepclean_plugins.demucs run variant=tiny_hdemucs dset.wav=DATA dset.clean_manifest=clean.json
"""

from .toolkit import DemucsToolkit

__all__ = ["DemucsToolkit"]
