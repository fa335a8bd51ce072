"""Shared utilities of the HD-MEA face."""
