"""sepclean's Open-Unmix adapter (entry point ``openunmix`` of the ``sepclean.toolkits`` group)."""

from sepclean_plugins.openunmix.adapter import OpenUnmixToolkit

__all__ = ["OpenUnmixToolkit"]
