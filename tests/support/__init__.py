"""Helpers shared by tests that do the damage for real (worker processes, servers)."""
