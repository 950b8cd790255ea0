"""Vigil protocol."""
