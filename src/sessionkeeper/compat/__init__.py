"""Surfaces of the systems sessionkeeper replaces: the Aria session manager and skill runner."""
