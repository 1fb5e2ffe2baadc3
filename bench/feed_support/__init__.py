"""Support modules for bench/feed.py (the matches feed: keyset vs offset at 4.1M matches)."""
