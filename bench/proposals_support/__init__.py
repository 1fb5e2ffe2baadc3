"""Helpers for ``bench/proposals.py`` (the proposals-loop bench); nothing here is production code."""
