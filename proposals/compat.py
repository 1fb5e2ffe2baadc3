"""Compatibility of two members, and picking the best pairs out of a pool, vectorized."""

from __future__ import annotations

import numpy as np

# Shared interests carry the score; a small bonus when both profiles are public, since
# public members can be introduced without asking first.
W_INTERESTS = 0.9
W_BOTH_PUBLIC = 0.1


def compatibility_score(*, mask_a: int, mask_b: int, both_public: bool) -> float:
    union = (mask_a | mask_b).bit_count()
    shared = (mask_a & mask_b).bit_count()
    jaccard = shared / union if union else 0.0
    return round(W_INTERESTS * jaccard + (W_BOTH_PUBLIC if both_public else 0.0), 6)


def pairs_best(
    *, ids: np.ndarray, masks: np.ndarray, public: np.ndarray, limit: int, blocked: set[tuple[int, int]] | None = None
) -> list[tuple[int, int, float]]:
    """Up to ``limit`` pairs from the pool, best compatibility first, each member used once.

    Scores every pair of the pool at once (P x P), then takes pairs greedily from the top.
    Ties break on the member ids, so the same pool always gives the same pairs."""
    n = ids.shape[0]
    if n < 2 or limit <= 0:
        return []
    m = masks.astype(np.int64).view(np.uint64)
    shared = np.bitwise_count(m[:, None] & m[None, :]).astype(np.float32)
    union = np.bitwise_count(m[:, None] | m[None, :]).astype(np.float32)
    jaccard = np.divide(shared, union, out=np.zeros_like(shared), where=union > 0)
    both_public = (public[:, None] & public[None, :]).astype(np.float32)
    score = (W_INTERESTS * jaccard + W_BOTH_PUBLIC * both_public).astype(np.float32)
    rows, cols = np.triu_indices(n, k=1)
    flat = score[rows, cols]
    order = np.lexsort((ids[cols], ids[rows], -flat))
    used: set[int] = set()
    picked: list[tuple[int, int, float]] = []
    for k in order:
        i, j = int(rows[k]), int(cols[k])
        if i in used or j in used:
            continue
        a, b = sorted((int(ids[i]), int(ids[j])))
        if blocked and (a, b) in blocked:
            continue
        used.update((i, j))
        picked.append((a, b, round(float(flat[k]), 6)))
        if len(picked) >= limit:
            break
    return picked
