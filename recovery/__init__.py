"""Vigil recovery."""
