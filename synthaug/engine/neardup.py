"""Near-duplicate detection: MinHash LSH over character shingles, confirmed with rapidfuzz.

Pure and Django-free. The only module that imports ``rapidfuzz``.

How a pair is found:

1. Both texts are normalised (``engine.text.normalise``: NFKC, case-folded, format
   characters dropped, whitespace collapsed), so unicode variants of one text compare equal.
2. Each text becomes the set of its character ``SHINGLE``-grams, hashed to 64 bits with numpy
   (one vectorised pass over a whole batch of texts, not a Python loop per shingle).
3. ``PERMUTATIONS`` multiply-shift hash functions give the MinHash signature; it is cut into
   ``BANDS`` bands of ``ROWS`` values and each band is hashed to one 32-bit *band key*
   (band number and dataset mixed in, so keys of different bands never meet). Two texts become
   candidates when they share at least one band key.
4. Candidates are confirmed with rapidfuzz ``fuzz.ratio`` on the normalised texts; the score
   (0-100) decides, never the MinHash estimate.

The parameters were tuned (see ``bench/neardup_bench.py``) so that pairs with
``fuzz.ratio >= 85`` are found with recall >= 0.95 while random pairs almost never collide:
candidates need ``1 - (1 - J**ROWS) ** BANDS`` (J: shingle Jaccard) to be near 1 for
edited copies at ratio 85, and tiny for unrelated texts. Twelve bands keep the stored
index under 1 GB per million samples.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from rapidfuzz import fuzz, process

from synthaug.engine.text import normalise

SHINGLE = 4
ROWS = 3
BANDS = 12
PERMUTATIONS = ROWS * BANDS
DEFAULT_THRESHOLD = 85.0
# Texts longer than this are compared on their first MAX_CHARS characters: a near-duplicate
# of a huge string is still one of its prefix, and the index cost stays bounded.
MAX_CHARS = 4000

_rng = np.random.default_rng(20241125)
# Odd multipliers and random offsets for multiply-shift hashing (2-universal on 64 bits).
_A = (_rng.integers(1, 2**63, size=PERMUTATIONS, dtype=np.uint64) << np.uint64(1)) | np.uint64(1)
_B = _rng.integers(0, 2**63, size=PERMUTATIONS, dtype=np.uint64)
_BAND_SALT = _rng.integers(1, 2**63, size=BANDS, dtype=np.uint64)
_POLY = np.uint64(0x100000001B3)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads every input bit over the 64 output bits (wrapping)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def prepare(text: str) -> str:
    """The form that is shingled and compared: normalised, cut to ``MAX_CHARS``."""
    return normalise(text)[:MAX_CHARS]


def shingle_hashes(prepared: str) -> np.ndarray:
    """64-bit hashes of the character ``SHINGLE``-grams of an already prepared text.

    A text shorter than a shingle is one shingle (itself); the empty text has none.
    """
    codes = np.frombuffer(prepared.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    n = codes.size
    if n == 0:
        return np.empty(0, dtype=np.uint64)
    k = min(SHINGLE, n)
    with np.errstate(over="ignore"):
        h = np.zeros(n - k + 1, dtype=np.uint64)
        for j in range(k):
            h = h * _POLY + codes[j : n - k + 1 + j]
        return _mix(h + np.uint64(k))


def signatures(prepared: Sequence[str]) -> np.ndarray:
    """MinHash signatures, shape ``(len(prepared), PERMUTATIONS)``, uint32.

    One vectorised pass: all shingles of the batch are hashed together and reduced per text
    with ``np.minimum.reduceat``. An empty text gets the all-ones signature; it only
    collides with other empty texts, which exact hashing already handles.
    """
    out = np.full((len(prepared), PERMUTATIONS), 0xFFFFFFFF, dtype=np.uint32)
    parts = [shingle_hashes(text) for text in prepared]
    lengths = np.fromiter((p.size for p in parts), dtype=np.int64, count=len(parts))
    present = np.flatnonzero(lengths)
    if present.size == 0:
        return out
    allh = np.concatenate([parts[i] for i in present])
    starts = np.concatenate(([0], np.cumsum(lengths[present])[:-1]))
    # Hash in column blocks to bound the intermediate (shingles x block) matrix.
    block = max(1, min(PERMUTATIONS, 2_000_000 // max(1, allh.size)))
    with np.errstate(over="ignore"):
        for lo in range(0, PERMUTATIONS, block):
            hi = min(PERMUTATIONS, lo + block)
            hv = (allh[:, None] * _A[None, lo:hi] + _B[None, lo:hi]) >> np.uint64(32)
            out[present, lo:hi] = np.minimum.reduceat(hv, starts, axis=0).astype(np.uint32)
    return out


def band_keys(sigs: np.ndarray, *, salt: int = 0) -> np.ndarray:
    """Band keys, shape ``(n, BANDS)``, int32 (a database integer).

    ``salt`` (the dataset id) is mixed in so that one key space serves every dataset.
    32 bits halve the stored index against 64; a random key meets one of a million
    items' ``BANDS`` keys with probability ~0.3%, and such a stray candidate is only a
    wasted rapidfuzz comparison, never a wrong match.
    """
    n = sigs.shape[0]
    bands = sigs.reshape(n, BANDS, ROWS).astype(np.uint64)
    with np.errstate(over="ignore"):
        acc = np.broadcast_to(_BAND_SALT ^ _mix(np.uint64(salt)), (n, BANDS)).copy()
        for r in range(ROWS):
            acc = _mix(acc * _POLY + bands[:, :, r])
    return (acc >> np.uint64(32)).astype(np.uint32).view(np.int32)


def keys_for(prepared: Sequence[str], *, salt: int = 0) -> np.ndarray:
    """Band keys of prepared texts, shape ``(n, BANDS)``."""
    return band_keys(signatures(prepared), salt=salt)


def length_compatible(a: int, b: int, threshold: float) -> bool:
    """Whether two lengths *can* reach ``fuzz.ratio >= threshold``.

    ``fuzz.ratio`` is ``200 * LCS / (len_a + len_b)`` and LCS <= the shorter length, so
    ``200 * min / (min + max) >= threshold`` is necessary.
    """
    if a == 0 and b == 0:
        return True
    return 200.0 * min(a, b) / (a + b) >= threshold


def ratio(a: str, b: str) -> float:
    """rapidfuzz ``fuzz.ratio`` of two prepared texts (0-100)."""
    return fuzz.ratio(a, b)


def brute_force_pairs(
    queries: Sequence[str],
    corpus: Sequence[str],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    workers: int = 1,
) -> set[tuple[int, int]]:
    """Every (query index, corpus index) with ``fuzz.ratio >= threshold``: the baseline.

    Compares every pair (rapidfuzz ``cdist``), in row blocks to bound memory.
    """
    pairs: set[tuple[int, int]] = set()
    step = 256
    for lo in range(0, len(queries), step):
        scores = process.cdist(
            queries[lo : lo + step],
            corpus,
            scorer=fuzz.ratio,
            score_cutoff=threshold,
            dtype=np.uint8,
            workers=workers,
        )
        for qi, ci in zip(*np.nonzero(scores), strict=True):
            pairs.add((lo + int(qi), int(ci)))
    return pairs


@dataclass(frozen=True, slots=True)
class Match:
    """``query`` (index or id) duplicates ``match`` with ``score``."""

    query: int
    match: int
    score: float


def score_pairs(
    left: Sequence[str],
    right: Sequence[str],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    workers: int = 1,
) -> np.ndarray:
    """``fuzz.ratio`` of ``left[i]`` against ``right[i]`` for every i (0 below threshold).

    rapidfuzz ``cpdist``: one call in C++ for all candidate pairs, no Python loop per pair;
    ``workers`` threads (-1: every core).
    """
    if not left:
        return np.empty(0, dtype=np.float32)
    return process.cpdist(
        left,
        right,
        scorer=fuzz.ratio,
        score_cutoff=threshold,
        dtype=np.float32,
        workers=workers,
    )


def length_mask(a: np.ndarray, b: np.ndarray, threshold: float) -> np.ndarray:
    """Vectorised ``length_compatible``."""
    total = a + b
    return (200.0 * np.minimum(a, b) >= threshold * total) | (total == 0)


def pair_candidates(
    table_keys: np.ndarray, table_pos: np.ndarray, keys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (query row, table position) pairs sharing at least one band key.

    ``table_keys`` is sorted and ``table_pos`` is parallel to it; ``keys`` has shape
    ``(n, BANDS)``. Fully vectorised: a search per key, then one ``np.unique``.
    """
    flat = keys.reshape(-1)
    lo = np.searchsorted(table_keys, flat, side="left")
    hi = np.searchsorted(table_keys, flat, side="right")
    counts = hi - lo
    total = int(counts.sum())
    if total == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    query = np.repeat(np.arange(flat.size, dtype=np.int64) // keys.shape[1], counts)
    offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    pos = table_pos[np.repeat(lo, counts) + offsets].astype(np.int64)
    combined = np.unique((query << 32) | pos)
    return combined >> 32, combined & 0xFFFFFFFF


@dataclass
class MemoryIndex:
    """An in-process LSH index for the benchmark and for tests: no database.

    Stores compactly: a sorted int32 key array and a parallel int32 position array
    (``BANDS * 8`` bytes per item), plus the prepared texts and their lengths for the
    rapidfuzz confirmation. Ids are the caller's; positions are internal.
    """

    threshold: float = DEFAULT_THRESHOLD
    workers: int = 1
    _keys: list[np.ndarray] = field(default_factory=list)
    _ids: list[int] = field(default_factory=list)
    _texts: list[str] = field(default_factory=list)
    _sorted: tuple[np.ndarray, np.ndarray] | None = None
    _lengths: np.ndarray | None = None
    _id_array: np.ndarray | None = None

    def add(self, ids: Sequence[int], prepared: Sequence[str], keys: np.ndarray | None = None):
        if keys is None:
            keys = band_keys(signatures(prepared))
        self._keys.append(keys)
        self._ids.extend(ids)
        self._texts.extend(prepared)
        self._sorted = self._lengths = self._id_array = None

    def _table(self) -> tuple[np.ndarray, np.ndarray]:
        if self._sorted is None:
            keys = np.concatenate(self._keys) if self._keys else np.empty((0, BANDS), np.int32)
            self._keys = [keys]
            flat = keys.reshape(-1)
            order = np.argsort(flat, kind="stable")
            self._sorted = (flat[order], (order // BANDS).astype(np.int32))
            self._lengths = np.fromiter(map(len, self._texts), np.int64, len(self._texts))
            self._id_array = np.asarray(self._ids, dtype=np.int64)
        return self._sorted

    @property
    def nbytes(self) -> int:
        """Bytes of the lookup arrays (texts excluded)."""
        keys, pos = self._table()
        return keys.nbytes + pos.nbytes + self._keys[0].nbytes

    def query(self, prepared: Sequence[str], keys: np.ndarray | None = None) -> list[list[Match]]:
        """All confirmed matches (score >= threshold) of each prepared text, best first,
        ties to the smaller id."""
        if keys is None:
            keys = band_keys(signatures(prepared))
        table_keys, table_pos = self._table()
        query, pos = pair_candidates(table_keys, table_pos, keys)
        qlen = np.fromiter(map(len, prepared), np.int64, len(prepared))
        keep = length_mask(qlen[query], self._lengths[pos], self.threshold)
        query, pos = query[keep], pos[keep]
        texts = self._texts
        scores = score_pairs(
            [prepared[q] for q in query.tolist()],
            [texts[p] for p in pos.tolist()],
            threshold=self.threshold,
            workers=self.workers,
        )
        hit = scores >= self.threshold
        results: list[list[Match]] = [[] for _ in prepared]
        for q, p, score in zip(
            query[hit].tolist(),
            self._id_array[pos[hit]].tolist(),
            scores[hit].tolist(),
            strict=True,
        ):
            results[q].append(Match(q, p, score))
        for found in results:
            found.sort(key=lambda m: (-m.score, m.match))
        return results

    def __len__(self) -> int:
        return len(self._texts)


def best_matches(
    query_id: int | None,
    text: str,
    candidate_ids: Iterable[int],
    texts: dict[int, str],
    threshold: float,
) -> list[Match]:
    """Confirm candidates against ``text``: matches >= threshold, best score first, ties to
    the smaller (earlier) id. Candidates whose length cannot reach the threshold are skipped,
    and so is ``query_id`` itself (a sample never duplicates itself)."""
    n = len(text)
    kept = [
        c for c in candidate_ids if c != query_id and length_compatible(n, len(texts[c]), threshold)
    ]
    scores = score_pairs([text] * len(kept), [texts[c] for c in kept], threshold=threshold)
    found = [
        Match(query_id or 0, c, float(s))
        for c, s in zip(kept, scores.tolist(), strict=True)
        if s >= threshold
    ]
    found.sort(key=lambda m: (-m.score, m.match))
    return found
