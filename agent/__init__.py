"""Vigil agent."""
