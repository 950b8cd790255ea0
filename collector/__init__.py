"""Vigil collector."""
