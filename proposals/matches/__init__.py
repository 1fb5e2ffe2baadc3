"""Matches: the feed, follows, conversations and the match metrics (a sub-domain of proposals)."""
