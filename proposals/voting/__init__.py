"""The voting loop: generation queue, proposals open for community voting, finalization (a sub-domain of proposals)."""
