"""The search for a unit's best formula: beam search and an exhaustive reference.

Everything is counted exactly from packed masks (:mod:`conceptkit.explain.masks`). For a
formula ``F`` with ``|F|`` pixels and ``|U AND F|`` pixels shared with the unit's mask ``U``,
every extension by a concept ``c`` is scored at once from two vectors over all concepts,
``fc[c] = |F AND C_c|`` and ``ufc[c] = |U AND F AND C_c|``:

    F AND c      inter = ufc                         size = fc
    F OR c       inter = |U AND F| + |U AND C_c| - ufc   size = |F| + |C_c| - fc
    F AND NOT c  inter = |U AND F| - ufc             size = |F| - fc

and ``IoU = inter / (act + size - inter + 1e-10)``, the dissection's own expression, where
``act`` is the unit's mask counted in the images the union covers: with ``union="category"``
the images where the mask overlaps a labelled pixel of any category of the formula's concepts
(negated ones included) or that carry an image-level label of one (for one concept exactly the
dissection's rule, so a length-1 formula scores the dissection's IoU); with ``"global"`` every
image. The two vectors of ``G op d`` follow from ``G``'s and one new count
``|G AND d AND C_c|``, which only touches the images of concept ``d``.

Scores are ``IoU * (1 - length_penalty) ** (length - 1)``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from conceptkit.explain.formulas import AND, ANDNOT, OPS, OR, Formula, Key, canonical
from conceptkit.explain.masks import ConceptMasks, UnitMask

EPS = 1e-10
FC_CACHE_ENTRIES = 4096  # unit-independent counts kept per process


@dataclass(eq=False)
class Entry:
    """A scored formula. ``fc``/``ufc: (L,) int64`` and ``support`` (the images it can be
    non-empty in) are filled when it is extended; ``parent op concept`` is how it was made."""

    formula: Formula
    key: Key
    leaves: frozenset[int]
    kmask: int
    size: int
    inter: int
    iou: float
    score: float
    seq: int
    parent: Entry | None = None
    op: str | None = None
    concept: int = -1
    fc: np.ndarray | None = field(default=None, repr=False)
    ufc: np.ndarray | None = field(default=None, repr=False)
    support: np.ndarray | None = field(default=None, repr=False)
    expanded: bool = False

    @property
    def length(self) -> int:
        return len(self.leaves)


@dataclass
class UnitExplanation:
    """One unit's answer. ``formula`` is None when no concept overlaps the unit at all.
    ``label1``/``iou1``: the best single concept (index, -1 for none) and its IoU, the
    dissection's label; ``best_by_length[k-1]``: IoU of the best formula of length <= k found.
    ``seconds``/``cpu_seconds``: wall and CPU time of the beam search (not the mask);
    ``exhaustive*``: the exhaustive reference when it was asked for."""

    unit: int
    formula: Formula | None
    iou: float
    score: float
    label1: int
    iou1: float
    best_by_length: list[float]
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    exhaustive: Formula | None = None
    exhaustive_iou: float = 0.0
    exhaustive_score: float = 0.0
    exhaustive_length: int = 0
    exhaustive_seconds: float = 0.0
    exhaustive_formulas: int = 0


class UnitSearch:
    """Counts and searches for one unit mask against all concepts.

    ``fc_cache`` (formula key -> ``(L,)`` counts) is unit-independent and may be shared by the
    searches of one process.
    """

    def __init__(
        self,
        cm: ConceptMasks,
        um: UnitMask,
        union: str = "category",
        length_penalty: float = 0.0,
        fc_cache: dict[Key, np.ndarray] | None = None,
    ) -> None:
        if union not in ("category", "global"):
            raise ValueError(f"union must be 'category' or 'global', not {union!r}")
        self.cm = cm
        self.um = um
        self.union = union
        self.factor = 1.0 - float(length_penalty)
        self.fc_cache = fc_cache if fc_cache is not None else {}
        rows, idx, counts = cm.block_counts(um.images, um.words)
        con = cm.block_concept[idx]
        self.uc = np.bincount(con, weights=counts, minlength=cm.concepts).astype(np.int64)
        hit = counts > 0
        self.member = np.zeros(len(um.images), dtype=np.int64)
        np.bitwise_or.at(self.member, rows[hit], np.left_shift(1, cm.cats[con[hit]]))
        self.total = um.total
        self._act: dict[int, int] = {}
        self._ufc_leaf: dict[int, np.ndarray] = {}
        self._seq = 0

    # ------------------------------------------------------------------ counts

    def act(self, kmask: int) -> int:
        """Mask pixels in the images the union of categories ``kmask`` (bit k: category k)
        covers."""
        if self.union == "global":
            return self.total
        if kmask not in self._act:
            self._act[kmask] = int(self.um.sizes[(self.member & kmask) != 0].sum())
        return self._act[kmask]

    def act_by_concept(self, kmask: int) -> np.ndarray:
        """``(L,) float64``: :meth:`act` of ``kmask`` plus each concept's category."""
        per_cat = np.array(
            [self.act(kmask | (1 << k)) for k in range(self.cm.categories)], dtype=np.float64
        )
        return per_cat[self.cm.cats]

    def _unit_rows(self, images: np.ndarray) -> np.ndarray:
        """The unit's packed mask on ``images`` (a subset of ``um.images``)."""
        return self.um.words[np.searchsorted(self.um.images, images)]

    def evaluate(self, f: Formula, images: np.ndarray) -> np.ndarray:
        """``(len(images), W) uint64``: formula ``f``'s mask on ``images`` (ascending)."""
        if f.is_leaf:
            return self.cm.mask(f.concept, images)
        left, right = f.children()
        a = self.evaluate(left, images)
        b = self.evaluate(right, images)
        if f.op == AND:
            return a & b
        if f.op == OR:
            return a | b
        return a & ~b

    def leaf_ufc(self, c: int) -> np.ndarray:
        """``(L,)``: ``|U AND C_c AND C_x|`` for every concept x."""
        if c not in self._ufc_leaf:
            J = np.intersect1d(self.um.images, self.cm.support(c), assume_unique=True)
            X = self._unit_rows(J) & self.cm.mask(c, J)
            self._ufc_leaf[c] = self.cm.count(J, X)
        return self._ufc_leaf[c]

    def ensure_vectors(self, e: Entry) -> None:
        """Fill ``e.fc``, ``e.ufc`` and ``e.support``."""
        if e.fc is not None:
            return
        cm = self.cm
        if e.parent is None:
            e.fc = cm.pair[e.concept]
            e.ufc = self.leaf_ufc(e.concept)
            e.support = cm.support(e.concept)
            return
        g, d = e.parent, e.concept
        self.ensure_vectors(g)
        assert g.fc is not None and g.ufc is not None and g.support is not None
        J = np.intersect1d(g.support, cm.support(d), assume_unique=True)
        pair_key: Key = ("meet", canonical(g.formula), d)
        t = self.fc_cache.get(pair_key)
        if t is None:
            t = cm.count(J, self.evaluate(g.formula, J) & cm.mask(d, J))
            if len(self.fc_cache) >= FC_CACHE_ENTRIES:
                self.fc_cache.clear()
            self.fc_cache[pair_key] = t
        Ju = np.intersect1d(J, self.um.images, assume_unique=True)
        Xu = self._unit_rows(Ju) & self.evaluate(g.formula, Ju) & cm.mask(d, Ju)
        tu = cm.count(Ju, Xu)
        if e.op == AND:
            e.fc, e.ufc, e.support = t, tu, J
        elif e.op == OR:
            e.fc = g.fc + cm.pair[d] - t
            e.ufc = g.ufc + self.leaf_ufc(d) - tu
            e.support = np.union1d(g.support, cm.support(d))
        else:
            e.fc, e.ufc, e.support = g.fc - t, g.ufc - tu, g.support

    # ------------------------------------------------------------------ scoring

    def single(self) -> tuple[np.ndarray, np.ndarray]:
        """``(iou, size)`` of every one-concept formula, ``(L,)`` each."""
        cm = self.cm
        act = self.act_by_concept(0)
        inter = self.uc.astype(np.float64)
        iou = inter / (act + cm.truth.astype(np.float64) - inter + EPS)
        return iou, cm.truth

    def extensions(self, e: Entry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(inter, size, iou)``, each ``(3, L)`` (rows: AND, OR, AND NOT) for ``e op c`` over
        every concept c; concepts already in ``e`` get IoU -1."""
        self.ensure_vectors(e)
        assert e.fc is not None and e.ufc is not None
        cm = self.cm
        inter = np.stack([e.ufc, e.inter + self.uc - e.ufc, e.inter - e.ufc])
        size = np.stack([e.fc, e.size + cm.truth - e.fc, e.size - e.fc])
        act = self.act_by_concept(e.kmask)
        fi = inter.astype(np.float64)
        iou = fi / (act[None, :] + size.astype(np.float64) - fi + EPS)
        iou[:, sorted(e.leaves)] = -1.0
        return inter, size, iou

    def penalty(self, length: int) -> float:
        return float(self.factor ** (length - 1))

    def leaf_entry(self, c: int, iou: float) -> Entry:
        self._seq += 1
        return Entry(
            Formula.leaf(c),
            canonical(Formula.leaf(c)),
            frozenset([c]),
            1 << int(self.cm.cats[c]),
            int(self.cm.truth[c]),
            int(self.uc[c]),
            iou,
            iou,
            self._seq,
            concept=c,
        )

    def child_entry(self, e: Entry, op: str, c: int, inter: int, size: int, iou: float) -> Entry:
        f = e.formula.join(op, Formula.leaf(c))
        self._seq += 1
        return Entry(
            f,
            canonical(f),
            e.leaves | {c},
            e.kmask | (1 << int(self.cm.cats[c])),
            size,
            inter,
            iou,
            iou * self.penalty(e.length + 1),
            self._seq,
            parent=e,
            op=op,
            concept=c,
        )

    def best_children(self, e: Entry, k: int) -> list[Entry]:
        """The ``k`` best extensions of ``e`` with a non-empty intersection (ties: AND, OR,
        AND NOT, then concept order)."""
        inter, size, iou = self.extensions(e)
        flat = np.where(inter.ravel() > 0, iou.ravel(), -1.0)
        order = np.argsort(-flat, kind="stable")[:k]
        L = self.cm.concepts
        out = []
        for i in order:
            if flat[i] <= 0:
                break
            r, c = divmod(int(i), L)
            iou_rc = float(flat[i])
            out.append(self.child_entry(e, OPS[r], c, int(inter[r, c]), int(size[r, c]), iou_rc))
        return out


# ----------------------------------------------------------------------------- beam search


def _rank(entries: list[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: (-e.score, e.length, e.seq))


def _first_best(iou: np.ndarray) -> int:
    """Index of the first maximum when it is positive (the dissection's tie rule when the
    concepts are in (category, number) order), else -1."""
    if len(iou) == 0 or not (iou.max() > 0):
        return -1
    return int(np.argmax(iou))


def beam_search(s: UnitSearch, max_length: int = 3, beam: int = 5) -> UnitExplanation:
    """Mu & Andreas' beam search: start from the ``beam`` best single concepts; at each length
    extend every formula of the beam by every (operator, concept) and keep the ``beam`` best of
    the old beam and the new formulas."""
    t0, c0 = time.perf_counter(), time.thread_time()
    iou1, _ = s.single()
    label1 = _first_best(iou1)
    best_len = [0.0] * max_length
    if label1 < 0:
        return UnitExplanation(s.um.unit, None, 0.0, 0.0, -1, 0.0, best_len)
    order = np.argsort(-iou1, kind="stable")[:beam]
    pool = [s.leaf_entry(int(c), float(iou1[c])) for c in order if iou1[c] > 0]
    best_len[0] = pool[0].iou
    for length in range(2, max_length + 1):
        seen = {e.key for e in pool}
        fresh: list[Entry] = []
        for e in list(pool):
            if e.expanded:
                continue
            e.expanded = True
            for child in s.best_children(e, beam):
                if child.key not in seen:
                    seen.add(child.key)
                    fresh.append(child)
        pool = _rank(pool + fresh)[:beam]
        best_len[length - 1] = pool[0].iou
    best = pool[0]
    return UnitExplanation(
        s.um.unit,
        best.formula,
        best.iou,
        best.score,
        label1,
        float(iou1[label1]),
        best_len,
        seconds=time.perf_counter() - t0,
        cpu_seconds=time.thread_time() - c0,
    )


# ----------------------------------------------------------------------------- exhaustive


@dataclass
class _Pairs:
    """Every two-concept formula ``a op b`` with a non-empty intersection, as arrays."""

    a: np.ndarray
    op: np.ndarray
    b: np.ndarray
    inter: np.ndarray
    size: np.ndarray
    iou: np.ndarray


def _all_pairs(s: UnitSearch, leaves: dict[int, Entry]) -> _Pairs:
    """``a op b`` for every ``a`` overlapping the unit (a formula whose first concept misses
    the unit is never better than its last concept alone); AND / OR once per pair."""
    parts: list[tuple[np.ndarray, ...]] = []
    for a, e in leaves.items():
        inter, size, iou = s.extensions(e)
        ok = (inter > 0) & (iou > 0)
        ok[0, : a + 1] = False
        ok[1, : a + 1] = False  # AND / OR: only b > a
        r, c = np.nonzero(ok)
        parts.append((np.full(len(r), a), r, c, inter[r, c], size[r, c], iou[r, c]))
    if not parts:
        z = np.zeros(0, dtype=np.int64)
        return _Pairs(z, z, z, z, z, np.zeros(0))
    cols = [np.concatenate([p[i] for p in parts]) for i in range(6)]
    return _Pairs(*cols)


def _bounds(s: UnitSearch, p: _Pairs) -> np.ndarray:
    """An upper bound on the IoU of every extension of each pair (before the penalty):
    AND / AND NOT keep at most its intersection in at least its union's masked pixels; OR
    adds at most the unit's largest single intersection to no smaller a union."""
    cats = s.cm.cats
    act = np.array(
        [s.act((1 << int(cats[a])) | (1 << int(cats[b]))) for a, b in zip(p.a, p.b, strict=True)],
        dtype=np.float64,
    )
    inter = p.inter.astype(np.float64)
    narrow = inter / np.maximum(act, 1.0)
    wide = (inter + float(s.uc.max())) / np.maximum(act + p.size - inter, 1.0)
    return np.maximum(narrow, wide)


def exhaustive_search(s: UnitSearch, max_length: int = 2) -> tuple[Entry | None, int]:
    """The best formula of length <= ``max_length`` (1, 2 or 3) in the beam's grammar (each new
    concept joined to the formula so far, no concept twice), found exactly: length 3 by branch
    and bound over the pairs. Returns the best entry and how many formulas were extended."""
    if not 1 <= max_length <= 3:
        raise ValueError("exhaustive search goes up to length 3")
    iou1, _ = s.single()
    c1 = _first_best(iou1)
    if c1 < 0:
        return None, 0
    best = s.leaf_entry(c1, float(iou1[c1]))
    if max_length == 1:
        return best, 0
    leaves = {int(a): s.leaf_entry(int(a), float(iou1[a])) for a in np.flatnonzero(s.uc > 0)}
    pairs = _all_pairs(s, leaves)
    pen2 = s.penalty(2)
    if len(pairs.iou) and pairs.iou.max() * pen2 > best.score:
        i = int(np.argmax(pairs.iou))
        a, b = int(pairs.a[i]), int(pairs.b[i])
        best = s.child_entry(
            leaves[a],
            OPS[pairs.op[i]],
            b,
            int(pairs.inter[i]),
            int(pairs.size[i]),
            float(pairs.iou[i]),
        )
    if max_length == 2:
        return best, len(leaves)
    bound = _bounds(s, pairs) * s.penalty(3)
    extended = len(leaves)
    for i in np.argsort(-bound, kind="stable"):
        if bound[i] <= best.score:
            break
        a, b = int(pairs.a[i]), int(pairs.b[i])
        e = s.child_entry(
            leaves[a],
            OPS[pairs.op[i]],
            b,
            int(pairs.inter[i]),
            int(pairs.size[i]),
            float(pairs.iou[i]),
        )
        top = s.best_children(e, 1)
        extended += 1
        if top and top[0].score > best.score:
            best = top[0]
    return best, extended


def explain_unit(
    s: UnitSearch, max_length: int, beam: int, exhaustive_length: int = 0
) -> UnitExplanation:
    """Beam search, plus the exhaustive reference up to ``exhaustive_length`` (0: none)."""
    res = beam_search(s, max_length, beam)
    if exhaustive_length:
        t0 = time.perf_counter()
        best, n = exhaustive_search(s, exhaustive_length)
        res.exhaustive_seconds = time.perf_counter() - t0
        res.exhaustive_formulas = n
        if best is not None:
            res.exhaustive = best.formula
            res.exhaustive_iou = best.iou
            res.exhaustive_score = best.score
            res.exhaustive_length = best.length
    return res


__all__ = [
    "ANDNOT",
    "Entry",
    "UnitExplanation",
    "UnitSearch",
    "beam_search",
    "exhaustive_search",
    "explain_unit",
]
