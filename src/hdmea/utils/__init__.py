"""Utilities at the original pipeline's import paths: ``hashing``, ``validation``, ``logging``, ``exceptions``."""
