"""Synthetic datasets in the official folder layouts, for the demo and tests."""
