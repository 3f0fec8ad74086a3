"""``mixed23`` sized for CPUs: tiny models, the small synthetic profile (40 songs, 8 references)."""

from ._explorers import CleaningExplorer
from .mixed23 import conditions


@CleaningExplorer
def explorer(launcher):
    conditions(launcher, "cpu")
