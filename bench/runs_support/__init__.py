"""Helpers for ``bench/runs.py`` (the match-run latency bench); nothing here is production code."""
