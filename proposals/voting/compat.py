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


# Pairs are scored within chunks of the pool: all pairs of a chunk at once (C x C), so the
# work grows with the pool, not with its square (a 9,000-member pool scored whole is 40M
# pairs and seconds of sorting; in chunks of 500 it is 18 small matrices).
CHUNK = 500
CANDIDATES = 20


def pairs_best(
    *, ids: np.ndarray, masks: np.ndarray, public: np.ndarray, limit: int, blocked: set[tuple[int, int]] | None = None
) -> list[tuple[int, int, float]]:
    """Up to ``limit`` pairs from the pool, best compatibility first, each member used once.

    The pool is cut into chunks; each chunk's pairs are taken greedily from the top, then
    the chunks' picks are merged best first. Ties break on the member ids, so the same
    pool always gives the same pairs."""
    picked: list[tuple[int, int, float]] = []
    for start in range(0, ids.shape[0], CHUNK):
        end = start + CHUNK
        picked += _pairs_best_chunk(
            ids=ids[start:end], masks=masks[start:end], public=public[start:end], limit=limit, blocked=blocked
        )
    picked.sort(key=lambda pair: (-pair[2], pair[0], pair[1]))
    return picked[:limit]


def _pairs_best_chunk(
    *, ids: np.ndarray, masks: np.ndarray, public: np.ndarray, limit: int, blocked: set[tuple[int, int]] | None
) -> list[tuple[int, int, float]]:
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
    # The greedy walk only ever reaches the top of the ranking: keep the best CANDIDATES
    # pairs per member (a partial selection), and rank just those.
    keep = min(flat.shape[0], CANDIDATES * n)
    if keep < flat.shape[0]:
        top = np.argpartition(-flat, keep - 1)[:keep]
        rows, cols, flat = rows[top], cols[top], flat[top]
    return pairs_greedy(rows=rows, cols=cols, scores=flat, ids=ids, limit=min(limit, n // 2), blocked=blocked)


def pairs_greedy(
    *,
    rows: np.ndarray,
    cols: np.ndarray,
    scores: np.ndarray,
    ids: np.ndarray,
    limit: int,
    blocked: set[tuple[int, int]] | None,
) -> list[tuple[int, int, float]]:
    """Of the candidate pairs ``(ids[rows[k]], ids[cols[k]])`` scored ``scores[k]``, the best
    first (ties by member ids), each member at most once, none of ``blocked``: at most
    ``limit`` pairs ``(lower id, higher id, score)``."""
    order = np.lexsort((ids[cols], ids[rows], -scores))
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
        picked.append((a, b, round(float(scores[k]), 6)))
        if len(picked) >= limit:
            break
    return picked
