"""A prototype of the change suggested for ``proposals.voting.compat.pairs_best`` (not used by
production; the bench runs it on the very pools the real refill drew and checks that it
returns the same pairs).

``pairs_best`` sorts all P(P-1)/2 pairs of the pool with a three-key ``np.lexsort`` and then
walks the order greedily; with the pool at 6x the need (9,000 members at the large preset)
that is 40M pairs and the sort dominates. The greedy only ever reads a short prefix of the
order, and "every pair whose score is >= t" is exactly such a prefix (the score is the first
key). So: score the upper triangle in row blocks, find a threshold that keeps about
``64 * limit`` pairs with ``np.partition``, lexsort just those, run the same greedy; if the
prefix runs out before ``limit`` pairs are picked, widen it 8x and redo. Same scores (same
float32 arithmetic), same tie-breaks, same result."""

from __future__ import annotations

import numpy as np

from proposals.voting.compat import W_BOTH_PUBLIC, W_INTERESTS, pairs_greedy

BLOCK = 512


def _scores_upper(*, masks: np.ndarray, public: np.ndarray) -> np.ndarray:
    n = masks.shape[0]
    m = masks.astype(np.int64).view(np.uint64)
    pub = public.astype(bool)
    score = np.empty((n, n), dtype=np.float32)
    cols = np.arange(n)[None, :]
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        a = m[start:stop, None]
        shared = np.bitwise_count(a & m[None, :]).astype(np.float32)
        union = np.bitwise_count(a | m[None, :]).astype(np.float32)
        jaccard = np.divide(shared, union, out=np.zeros_like(shared), where=union > 0)
        both_public = (pub[start:stop, None] & pub[None, :]).astype(np.float32)
        block = (W_INTERESTS * jaccard + W_BOTH_PUBLIC * both_public).astype(np.float32)
        block[cols <= np.arange(start, stop)[:, None]] = -1.0  # keep j > i only
        score[start:stop] = block
    return score


def pairs_best_prefix(
    *, ids: np.ndarray, masks: np.ndarray, public: np.ndarray, limit: int, blocked: set[tuple[int, int]] | None = None
) -> list[tuple[int, int, float]]:
    n = ids.shape[0]
    if n < 2 or limit <= 0:
        return []
    flat_all = _scores_upper(masks=masks, public=public).ravel()
    total = n * (n - 1) // 2
    keep = min(total, max(64 * limit, 4096))
    while True:
        if keep >= total:
            cut = np.float32(-0.5)  # every real pair (scores are >= 0)
        else:
            cut = max(np.partition(flat_all, flat_all.size - keep)[flat_all.size - keep], np.float32(0.0))
        index = np.flatnonzero(flat_all >= cut)
        rows, cols = np.divmod(index, n)
        flat = flat_all[index]
        picked = pairs_greedy(rows=rows, cols=cols, scores=flat, ids=ids, limit=limit, blocked=blocked)
        if len(picked) >= limit:
            return picked
        if index.size >= total:
            return picked
        keep = min(total, keep * 8)
