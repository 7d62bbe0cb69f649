"""analyse(): agreement between annotators of the same images, pooled per image, pair, concept.

For every image annotated more than once and every pair of its annotators (annotators in sorted
order, pairs ``a < b``): the joint label counts of their label planes, Cohen's kappa, the greedy
IoU matching of their instances, the split of the disagreeing pixels into naming / quantity /
quality errors and the boundary F-score of matched same-name instances. Images pool into pairs,
pairs into the overall figures (sums of pixel counts, then ratios).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from conceptkit.annotations import ImageAnnotation
from conceptkit.consistency import _metrics as M
from conceptkit.consistency._planes import InstancePlane, Resolver, instance_planes, resolver
from conceptkit.consistency._report import (
    UNLABELLED_POLICY,
    ConceptStats,
    ConsistencyReport,
    ImageStats,
    NamingConfusion,
    PairStats,
    SegmentCount,
    VocabularyDrift,
)
from conceptkit.errors import UsageError

NameJoint = dict[tuple[str, str], int]  # (name in a, name in b) -> pixels; "" = unlabelled


@dataclass
class _PairAcc:
    """Running sums of one annotator pair (one image, or pooled)."""

    images: int = 0
    joint: NameJoint = field(default_factory=dict)
    naming: int = 0
    quantity: int = 0
    quality: int = 0
    instances_a: int = 0
    instances_b: int = 0
    matched: int = 0
    renamed: int = 0
    unmatched_a: int = 0
    unmatched_b: int = 0
    bf_sum: float = 0.0
    bf_count: int = 0
    confusions: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    # name -> [images, instances] with visible pixels, for a and for b
    names_a: dict[str, list[int]] = field(default_factory=dict)
    names_b: dict[str, list[int]] = field(default_factory=dict)

    def add(self, other: _PairAcc) -> None:
        self.images += other.images
        M.add_joint(self.joint, other.joint)
        for name in (
            "naming",
            "quantity",
            "quality",
            "instances_a",
            "instances_b",
            "matched",
            "renamed",
            "unmatched_a",
            "unmatched_b",
            "bf_count",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.bf_sum += other.bf_sum
        _merge(self.confusions, other.confusions)
        _merge(self.names_a, other.names_a)
        _merge(self.names_b, other.names_b)

    def counts(self) -> tuple[int, int, int]:
        """(pixels, both unlabelled, agreeing labelled pixels)."""
        pixels = sum(self.joint.values())
        both = self.joint.get(("", ""), 0)
        agree = sum(n for (x, y), n in self.joint.items() if x == y and x)
        return pixels, both, agree

    def stats(self, image: str, a: str, b: str) -> PairStats:
        pixels, both, agree = self.counts()
        labelled = pixels - both
        disagree = labelled - agree
        return PairStats(
            image=image,
            annotator_a=a,
            annotator_b=b,
            images=self.images,
            pixels=pixels,
            labelled=labelled,
            both_unlabelled=both,
            agree=agree,
            disagree=disagree,
            agreement=_ratio(agree, labelled),
            agreement_with_unlabelled=_ratio(agree + both, pixels),
            kappa=_num(M.cohen_kappa(self.joint)),
            naming=self.naming,
            quantity=self.quantity,
            quality=self.quality,
            naming_share=_ratio(self.naming, disagree),
            quantity_share=_ratio(self.quantity, disagree),
            quality_share=_ratio(self.quality, disagree),
            instances_a=self.instances_a,
            instances_b=self.instances_b,
            matched=self.matched,
            renamed=self.renamed,
            unmatched_a=self.unmatched_a,
            unmatched_b=self.unmatched_b,
            boundary_f=_ratio(self.bf_sum, self.bf_count),
            boundary_pairs=self.bf_count,
        )


def _merge(mine: dict[Any, list[int]], theirs: dict[Any, list[int]]) -> None:
    """Add the [n, m] counts of ``theirs`` into ``mine``."""
    for key, (n, m) in theirs.items():
        cur = mine.setdefault(key, [0, 0])
        cur[0] += n
        cur[1] += m


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else num / den


def _num(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def compare_pair(
    pa: InstancePlane, pb: InstancePlane, iou_threshold: float, tolerance: int
) -> _PairAcc:
    """All pair measures of two annotators' planes of one image."""
    names = sorted(set(pa.names) | set(pb.names))
    index = {n: i + 1 for i, n in enumerate(names)}
    lookup = ["", *names]
    la = pa.label_plane(index)
    lb = pb.label_plane(index)
    acc = _PairAcc(images=1)
    acc.joint = {(lookup[i], lookup[j]): n for (i, j), n in M.joint_counts(la, lb).items()}
    na, nb = len(pa.names), len(pb.names)
    match_a, match_b, _ = M.match_instances(pa.ids, na, pb.ids, nb, iou_threshold)
    acc.naming, acc.quantity, acc.quality = M.error_types(pa.ids, pb.ids, la, lb, match_a, match_b)
    visible_a = np.bincount(pa.ids.ravel(), minlength=na + 1)
    visible_b = np.bincount(pb.ids.ravel(), minlength=nb + 1)
    acc.instances_a = int(np.count_nonzero(visible_a[1:]))
    acc.instances_b = int(np.count_nonzero(visible_b[1:]))
    box_a = M.boxes(pa.ids, na)
    box_b = M.boxes(pb.ids, nb)
    for i in range(1, na + 1):
        j = int(match_a[i])
        if j < 0:
            if visible_a[i]:
                acc.unmatched_a += 1
            continue
        acc.matched += 1
        name_a, name_b = pa.names[i - 1], pb.names[j - 1]
        # both instances lie inside the union of their boxes, widened for the tolerance
        y0 = max(min(box_a[i, 0], box_b[j, 0]) - tolerance - 1, 0)
        x0 = max(min(box_a[i, 1], box_b[j, 1]) - tolerance - 1, 0)
        y1 = max(box_a[i, 2], box_b[j, 2]) + tolerance + 2
        x1 = max(box_a[i, 3], box_b[j, 3]) + tolerance + 2
        mask_a = pa.ids[y0:y1, x0:x1] == i
        mask_b = pb.ids[y0:y1, x0:x1] == j
        if name_a != name_b:
            acc.renamed += 1
            cur = acc.confusions.setdefault((name_a, name_b), [0, 0])
            cur[0] += 1
            cur[1] += int((mask_a & mask_b).sum())
        else:
            acc.bf_sum += M.boundary_f(mask_a, mask_b, tolerance)
            acc.bf_count += 1
    for plane, visible, seen in ((pa, visible_a, acc.names_a), (pb, visible_b, acc.names_b)):
        for i, name in enumerate(plane.names):
            if visible[i + 1]:
                seen.setdefault(name, [1, 0])[1] += 1
    acc.unmatched_b = int(sum(1 for j in range(1, nb + 1) if match_b[j] < 0 and visible_b[j]))
    return acc


def _annotator_names(anns: Sequence[ImageAnnotation], key: str) -> list[str]:
    names = []
    for i, ann in enumerate(anns):
        names.append(ann.annotator or ann.source or f"annotator{i + 1}")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise UsageError(
                f"image {key!r} has two annotations by {name!r}; name each export differently "
                "(annotators are told apart by ImageAnnotation.annotator, the export's folder name)"
            )
        seen.add(name)
    return names


def planes_of(
    anns: Sequence[ImageAnnotation], key: str, resolve: Resolver, convention: str | None
) -> tuple[list[str], list[str], dict[str, list[InstancePlane]]]:
    """One image's annotations as planes, all at the first annotation's size.

    Returns (annotator names in the given order, categories sorted, category -> one plane per
    annotator in the given order; an annotator without shapes of a category gets an empty one).
    """
    names = _annotator_names(anns, key)
    size = (anns[0].height, anns[0].width)
    per = [
        instance_planes(ann, name, resolve, size=size, convention=convention)
        for ann, name in zip(anns, names)
    ]
    layers = sorted({layer for d in per for layer in d}) or ["object"]
    out: dict[str, list[InstancePlane]] = {}
    for layer in layers:
        out[layer] = [
            d.get(layer) or InstancePlane(name, np.zeros(size, dtype=np.int32), [])
            for d, name in zip(per, names)
        ]
    return names, layers, out


def analyse(
    groups: Mapping[str, list[ImageAnnotation]],
    vocabulary: Any = None,
    out_dir: Path | None = None,
    iou_threshold: float = 0.5,
    convention: str | None = None,
    boundary_tolerance: int | None = None,
) -> ConsistencyReport:
    """Measure the agreement of the annotators of every image annotated more than once.

    ``groups``: image key -> that image's annotations, one per annotator (``ann.annotator``
    names them; an image with a single annotation is counted and left out). Annotations at
    another size than the first one's are resampled to it. ``vocabulary``: maps names to
    canonical names (None: lower-case/strip). ``out_dir``: when given, the report files are
    written into ``out_dir/consistency/``. ``iou_threshold``: instances match at IoU >= this.
    ``convention``: pixel convention for every shape (None: each reader's own).
    ``boundary_tolerance``: pixels (None: 0.75% of each image's diagonal, at least 1).
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise UsageError(f"the IoU threshold must lie in (0, 1], not {iou_threshold}")
    resolve = resolver(vocabulary)
    pair_acc: dict[tuple[str, str], _PairAcc] = {}
    fleiss_all = M.FleissSums(count={}, square={})
    concept_fleiss: dict[str, list[tuple[int, int, int, int]]] = {}
    images: list[ImageStats] = []
    image_pairs: list[PairStats] = []
    segments: list[SegmentCount] = []
    variances: list[float] = []
    used: dict[str, set[str]] = {}  # annotator -> names with visible pixels anywhere
    shared: set[tuple[str, str]] = set()
    annotators: set[str] = set()
    single = 0
    multi_rater = False
    tolerances: set[int] = set()
    for key in sorted(groups):
        anns = groups[key]
        if len(anns) < 2:
            single += 1
            continue
        names_given, layers, by_layer = planes_of(anns, key, resolve, convention)
        order = sorted(range(len(names_given)), key=lambda i: names_given[i])
        who = [names_given[i] for i in order]
        h, w = by_layer[layers[0]][0].ids.shape
        tol = boundary_tolerance if boundary_tolerance is not None else M.default_tolerance(h, w)
        tolerances.add(tol)
        image_acc = _PairAcc()
        per_pair: dict[tuple[str, str], _PairAcc] = {}
        counts = [0] * len(who)
        fs = M.FleissSums(count={}, square={})
        for layer in layers:
            planes = [by_layer[layer][i] for i in order]
            for pa, pb in combinations(planes, 2):
                acc = compare_pair(pa, pb, iou_threshold, tol)
                per_pair.setdefault((pa.annotator, pb.annotator), _PairAcc()).add(acc)
            for k, p in enumerate(planes):
                counts[k] += p.n_instances
                visible = np.bincount(p.ids.ravel(), minlength=len(p.names) + 1)
                used.setdefault(p.annotator, set()).update(
                    name for i, name in enumerate(p.names) if visible[i + 1]
                )
            # Fleiss over the layer's label planes (categories: names + unlabelled)
            names = sorted({n for p in planes for n in p.names})
            index = {n: i + 1 for i, n in enumerate(names)}
            layer_fs = M.FleissSums.of([p.label_plane(index) for p in planes])
            lookup = ["", *names]
            layer_fs.count = {lookup[k]: v for k, v in layer_fs.count.items()}
            layer_fs.square = {lookup[k]: v for k, v in layer_fs.square.items()}
            fs.add(layer_fs)
            for name in names:
                concept_fleiss.setdefault(name, []).append(
                    (layer_fs.count.get(name, 0), layer_fs.square.get(name, 0), h * w, len(planes))
                )
        for (a, b), acc in sorted(per_pair.items()):
            acc.images = 1
            image_pairs.append(acc.stats(key, a, b))
            pair_acc.setdefault((a, b), _PairAcc()).add(acc)
            shared.add((a, b))
            image_acc.add(acc)
        for name, n in zip(who, counts):
            annotators.add(name)
            segments.append(SegmentCount(image=key, annotator=name, segments=n))
        var = float(np.var(counts))
        variances.append(var)
        fleiss_all.add(fs)
        if len(who) > 2:
            multi_rater = True
        pooled = image_acc.stats(key, "*", "*")
        images.append(
            ImageStats(
                image=key,
                annotators=";".join(who),
                pixels=h * w,
                categories=";".join(layers),
                agreement=pooled.agreement,
                agreement_with_unlabelled=pooled.agreement_with_unlabelled,
                kappa=_num(fs.kappa()) if len(who) > 2 else pooled.kappa,
                disagree=pooled.disagree,
                naming_share=pooled.naming_share,
                quantity_share=pooled.quantity_share,
                quality_share=pooled.quality_share,
                boundary_f=pooled.boundary_f,
                segments=";".join(f"{a}={c}" for a, c in zip(who, counts)),
                segments_mean=float(np.mean(counts)),
                segments_variance=var,
            )
        )

    pairs = [pair_acc[k].stats("*", *k) for k in sorted(pair_acc)]
    total = _PairAcc()
    for acc in pair_acc.values():
        total.add(acc)
    overall_pair = total.stats("*", "*", "*")
    if multi_rater or len(pair_acc) > 1:
        kappa, kind = _num(fleiss_all.kappa()), "Fleiss"
    else:
        kappa, kind = overall_pair.kappa, "Cohen"
    overall: dict[str, Any] = {
        "images": len(images),
        "single_images": single,
        "annotators": len(annotators),
        "pixels": overall_pair.pixels,
        "labelled": overall_pair.labelled,
        "both_unlabelled": overall_pair.both_unlabelled,
        "agree": overall_pair.agree,
        "disagree": overall_pair.disagree,
        "agreement": overall_pair.agreement,
        "agreement_with_unlabelled": overall_pair.agreement_with_unlabelled,
        "kappa": kappa,
        "kappa_kind": kind,
        "naming_share": overall_pair.naming_share,
        "quantity_share": overall_pair.quantity_share,
        "quality_share": overall_pair.quality_share,
        "boundary_f": overall_pair.boundary_f,
        "segments_variance": float(np.mean(variances)) if variances else None,
    }
    settings: dict[str, Any] = {
        "iou_threshold": float(iou_threshold),
        "boundary_tolerance": (
            "given" if boundary_tolerance is not None else "0.75% of the image diagonal, >= 1"
        ),
        "boundary_tolerance_px": sorted(tolerances),
        "convention": convention or "each reader's own",
        "matching": "greedy one-to-one by IoU, highest first",
        "unlabelled": UNLABELLED_POLICY,
        "vocabulary": "identity (lower-case, strip)"
        if vocabulary is None
        else type(vocabulary).__name__,
    }
    report = ConsistencyReport(
        annotators=sorted(annotators),
        settings=settings,
        overall=overall,
        images=images,
        image_pairs=image_pairs,
        pairs=pairs,
        concepts=_concepts(pair_acc, concept_fleiss, multi_rater),
        segments=segments,
        naming=_confusions(pair_acc),
        vocabulary=_drift(pair_acc, used, shared),
    )
    if out_dir is not None:
        report.write(out_dir)
    return report


def _concepts(
    pair_acc: dict[tuple[str, str], _PairAcc],
    concept_fleiss: dict[str, list[tuple[int, int, int, int]]],
    multi_rater: bool,
) -> list[ConceptStats]:
    rows: list[ConceptStats] = []
    pooled: dict[str, list[int]] = {}
    for (a, b), acc in sorted(pair_acc.items()):
        pixels = sum(acc.joint.values())
        area_a: dict[str, int] = {}
        area_b: dict[str, int] = {}
        inter: dict[str, int] = {}
        for (x, y), n in acc.joint.items():
            if x:
                area_a[x] = area_a.get(x, 0) + n
            if y:
                area_b[y] = area_b.get(y, 0) + n
            if x and x == y:
                inter[x] = n
        for name in sorted(set(area_a) | set(area_b)):
            pa, pb, i = area_a.get(name, 0), area_b.get(name, 0), inter.get(name, 0)
            union = pa + pb - i
            rows.append(
                ConceptStats(
                    concept=name,
                    annotator_a=a,
                    annotator_b=b,
                    pixels_a=pa,
                    pixels_b=pb,
                    intersection=i,
                    union=union,
                    iou=_ratio(i, union),
                    kappa=_num(M.binary_kappa(pa, pb, i, pixels)),
                )
            )
            slot = pooled.setdefault(name, [0, 0, 0, 0, 0])
            slot[0] += pa
            slot[1] += pb
            slot[2] += i
            slot[3] += union
            slot[4] += pixels
    if len(pair_acc) > 1:
        for name in sorted(pooled):
            pa, pb, i, union, pixels = pooled[name]
            kappa = (
                _num(M.fleiss_binary(concept_fleiss.get(name, [])))
                if multi_rater
                else _num(M.binary_kappa(pa, pb, i, pixels))
            )
            rows.append(
                ConceptStats(
                    concept=name,
                    annotator_a="*",
                    annotator_b="*",
                    pixels_a=pa,
                    pixels_b=pb,
                    intersection=i,
                    union=union,
                    iou=_ratio(i, union),
                    kappa=kappa,
                )
            )
    rows.sort(key=lambda r: (r.concept, r.annotator_a == "*", r.annotator_a, r.annotator_b))
    return rows


def _confusions(pair_acc: dict[tuple[str, str], _PairAcc]) -> list[NamingConfusion]:
    rows = [
        NamingConfusion(annotator_a=a, annotator_b=b, name_a=x, name_b=y, instances=n, pixels=px)
        for (a, b), acc in pair_acc.items()
        for (x, y), (n, px) in acc.confusions.items()
    ]
    rows.sort(key=lambda r: (r.annotator_a, r.annotator_b, -r.pixels, r.name_a, r.name_b))
    return rows


def _drift(
    pair_acc: dict[tuple[str, str], _PairAcc],
    used: dict[str, set[str]],
    shared: set[tuple[str, str]],
) -> list[VocabularyDrift]:
    """Names one annotator used on images shared with another who never used them anywhere."""
    rows: list[VocabularyDrift] = []
    for a, b in sorted(shared):
        acc = pair_acc[(a, b)]
        joint = acc.joint
        for x, y, flip in ((a, b, False), (b, a, True)):
            mine = acc.names_b if flip else acc.names_a
            theirs = used.get(y, set())
            for name in sorted(set(mine) - theirs):
                own = 0
                overlap: dict[str, int] = {}
                for (p, q), n in joint.items():
                    p, q = (q, p) if flip else (p, q)
                    if p == name:
                        own += n
                        if q:
                            overlap[q] = overlap.get(q, 0) + n
                co = sorted(
                    ((q, n / own) for q, n in overlap.items() if own and n / own >= 0.1),
                    key=lambda t: (-t[1], t[0]),
                )[:3]
                similar = difflib.get_close_matches(name, sorted(theirs), n=3, cutoff=0.7)
                rows.append(
                    VocabularyDrift(
                        annotator=x,
                        name=name,
                        images=mine[name][0],
                        instances=mine[name][1],
                        pixels=own,
                        never_used_by=y,
                        similar=";".join(similar),
                        co_located=";".join(f"{q}:{s:.2f}" for q, s in co),
                    )
                )
    rows.sort(key=lambda r: (r.annotator, r.name, r.never_used_by))
    return rows
