"""Plumbing a user of the library never touches directly."""
