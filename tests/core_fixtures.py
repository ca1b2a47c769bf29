"""Fixtures for the foundation: tiny model folders, key pairs, the CLI runner."""
