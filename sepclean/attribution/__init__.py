"""Unlearning-based data attribution: which training songs share what the clean references teach."""
