"""sepclean: blind cleaning of music source separation training data."""

__version__ = "0.1.0"

STEMS = ("vocals", "bass", "drums", "other")
"""The four MUSDB18 targets, in the order every sepclean array and table uses."""
