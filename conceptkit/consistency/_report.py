"""The consistency report: its records, the summary table, the dict and the files it writes.

Files written by :meth:`ConsistencyReport.write` (into ``folder/consistency/``), one row per:

- ``images.csv``: image (all its annotator pairs pooled), with segment counts and variance;
- ``image_pairs.csv``: image and annotator pair;
- ``pairs.csv``: annotator pair over all shared images;
- ``concepts.csv``: concept and annotator pair (``*`` / ``*``: all pairs pooled);
- ``segments.csv``: image and annotator (segment count);
- ``naming.csv``: matched instances named differently (annotator pair, name in a, name in b);
- ``vocabulary.csv``: a name one annotator used and another never did, with suggestions;
- ``staple.csv``: STAPLE's sensitivity and specificity per annotator and concept (when run);
- ``consistency.json``: all of the above plus the overall figures and the settings.

Floats are written with 6 decimals (empty cell / JSON null when undefined); rows are sorted;
JSON keys are sorted: the same inputs give byte-identical files. A CSV text cell a spreadsheet
would run as a formula (an annotator's label ``=cmd``, ``-x``, ``+1``, ``@a``) is written with a
leading ``'`` (the JSON keeps the name as it is).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

#: How unlabelled pixels enter the figures (stated in the summary and the JSON).
UNLABELLED_POLICY = (
    "agreement = pixels both annotators gave the same label / pixels at least one labelled "
    "(pixels both left unlabelled are excluded); agreement_with_unlabelled counts them as "
    "agreeing over all pixels; kappas treat unlabelled as one more category over all pixels"
)


@dataclass
class PairStats:
    """Agreement of annotators ``a`` and ``b`` on one image (or pooled: ``image`` = ``*``).

    Pixel counts: ``labelled`` = at least one of the two labelled it; ``agree`` = both gave the
    same label; ``disagree`` = labels differ (one may be unlabelled) = naming + quantity +
    quality. Shares are of the disagreeing pixels. Instances: ``matched`` pairs by IoU,
    ``renamed`` = matched pairs with different names, ``unmatched_a/b`` = instances without a
    match. ``boundary_f``: mean boundary F-score of matched same-name instance pairs.
    """

    image: str
    annotator_a: str
    annotator_b: str
    images: int
    pixels: int
    labelled: int
    both_unlabelled: int
    agree: int
    disagree: int
    agreement: float | None
    agreement_with_unlabelled: float | None
    kappa: float | None
    naming: int
    quantity: int
    quality: int
    naming_share: float | None
    quantity_share: float | None
    quality_share: float | None
    instances_a: int
    instances_b: int
    matched: int
    renamed: int
    unmatched_a: int
    unmatched_b: int
    boundary_f: float | None
    boundary_pairs: int


@dataclass
class ImageStats:
    """One image, every annotator pair and category plane pooled (``pixels``: of the image;
    ``categories``: the planes compared). ``kappa``: Cohen's for two annotators, Fleiss'
    for more. ``segments``: ``annotator=count`` items; ``segments_variance``: their population
    variance."""

    image: str
    annotators: str
    pixels: int
    categories: str
    agreement: float | None
    agreement_with_unlabelled: float | None
    kappa: float | None
    disagree: int
    naming_share: float | None
    quantity_share: float | None
    quality_share: float | None
    boundary_f: float | None
    segments: str
    segments_mean: float
    segments_variance: float


@dataclass
class ConceptStats:
    """One concept and annotator pair over their shared images (``*``/``*``: all pairs pooled;
    then ``kappa`` is Fleiss' binary kappa when there are more than two annotators)."""

    concept: str
    annotator_a: str
    annotator_b: str
    pixels_a: int
    pixels_b: int
    intersection: int
    union: int
    iou: float | None
    kappa: float | None


@dataclass
class SegmentCount:
    """Segments (instances with visible pixels) of one annotator on one image."""

    image: str
    annotator: str
    segments: int


@dataclass
class NamingConfusion:
    """Matched instances that ``a`` called ``name_a`` and ``b`` called ``name_b``."""

    annotator_a: str
    annotator_b: str
    name_a: str
    name_b: str
    instances: int
    pixels: int


@dataclass
class VocabularyDrift:
    """A name ``annotator`` used on images shared with ``never_used_by``, who never used it
    on any image. ``images``/``instances``/``pixels``: its use on the shared images.

    ``similar``: the other's names that are spelled alike (difflib ratio >= 0.7);
    ``co_located``: the other's names on the same pixels, ``name:share`` of this name's pixels
    in shared images (shares >= 0.1, largest first).
    """

    annotator: str
    name: str
    images: int
    instances: int
    pixels: int
    never_used_by: str
    similar: str
    co_located: str


@dataclass
class StapleEstimate:
    """STAPLE's estimate of one annotator's sensitivity and specificity on one concept, over
    ``images`` images weighted by the concept's ``pixels`` in the consensus."""

    annotator: str
    concept: str
    images: int
    pixels: int
    sensitivity: float | None
    specificity: float | None


@dataclass
class ConsistencyReport:
    """Everything :func:`~conceptkit.consistency.analyse` measured.

    ``overall``: pooled figures (agreement, agreement_with_unlabelled, kappa and which kappa,
    error shares, boundary F, mean segment variance, counts of images).
    """

    annotators: list[str]
    settings: dict[str, Any]
    overall: dict[str, Any]
    images: list[ImageStats] = field(default_factory=list)
    image_pairs: list[PairStats] = field(default_factory=list)
    pairs: list[PairStats] = field(default_factory=list)
    concepts: list[ConceptStats] = field(default_factory=list)
    segments: list[SegmentCount] = field(default_factory=list)
    naming: list[NamingConfusion] = field(default_factory=list)
    vocabulary: list[VocabularyDrift] = field(default_factory=list)
    staple: list[StapleEstimate] = field(default_factory=list)

    @property
    def agreement(self) -> float | None:
        """Overall pixel agreement (both-unlabelled pixels excluded)."""
        value = self.overall.get("agreement")
        return None if value is None else float(value)

    # ------------------------------------------------------------------------- outputs

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: floats rounded to 6 decimals, NaN as None."""
        data = {
            "annotators": list(self.annotators),
            "settings": self.settings,
            "overall": self.overall,
            "images": [asdict(r) for r in self.images],
            "image_pairs": [asdict(r) for r in self.image_pairs],
            "pairs": [asdict(r) for r in self.pairs],
            "concepts": [asdict(r) for r in self.concepts],
            "segments": [asdict(r) for r in self.segments],
            "naming": [asdict(r) for r in self.naming],
            "vocabulary": [asdict(r) for r in self.vocabulary],
            "staple": [asdict(r) for r in self.staple],
        }
        cleaned: dict[str, Any] = _clean(data)
        return cleaned

    def write(self, folder: str | Path, subdir: str = "consistency") -> Path:
        """Write the report files into ``folder/subdir`` (``subdir=""``: into ``folder``)."""
        out = Path(folder) / subdir if subdir else Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        tables: list[tuple[str, type, list[Any]]] = [
            ("images.csv", ImageStats, self.images),
            ("image_pairs.csv", PairStats, self.image_pairs),
            ("pairs.csv", PairStats, self.pairs),
            ("concepts.csv", ConceptStats, self.concepts),
            ("segments.csv", SegmentCount, self.segments),
            ("naming.csv", NamingConfusion, self.naming),
            ("vocabulary.csv", VocabularyDrift, self.vocabulary),
        ]
        if self.staple:
            tables.append(("staple.csv", StapleEstimate, self.staple))
        for name, record, rows in tables:
            (out / name).write_text(_csv(record, rows), encoding="utf-8", newline="")
        text = json.dumps(self.to_dict(), sort_keys=True, indent=2, ensure_ascii=False)
        (out / "consistency.json").write_text(text + "\n", encoding="utf-8")
        return out

    def summary(self) -> str:
        """A short table readable at a glance: one row per annotator pair, then overall."""
        o = self.overall
        lines = [
            f"Annotator consistency: {o['images']} image(s) annotated more than once, "
            f"{len(self.annotators)} annotators, instances matched at IoU >= "
            f"{self.settings['iou_threshold']:g}",
        ]
        if o.get("single_images"):
            lines[0] += f" ({o['single_images']} image(s) with one annotation left out)"
        header = (
            "pair",
            "images",
            "agree",
            "agree+bg",
            "kappa",
            "naming",
            "quantity",
            "quality",
            "bF",
        )
        rows = [
            (
                f"{p.annotator_a} ~ {p.annotator_b}",
                str(p.images),
                _fmt(p.agreement, 3),
                _fmt(p.agreement_with_unlabelled, 3),
                _fmt(p.kappa, 3),
                _pct(p.naming_share),
                _pct(p.quantity_share),
                _pct(p.quality_share),
                _fmt(p.boundary_f, 2),
            )
            for p in self.pairs
        ]
        rows.append(
            (
                "overall",
                str(o["images"]),
                _fmt(o.get("agreement"), 3),
                _fmt(o.get("agreement_with_unlabelled"), 3),
                _fmt(o.get("kappa"), 3),
                _pct(o.get("naming_share")),
                _pct(o.get("quantity_share")),
                _pct(o.get("quality_share")),
                _fmt(o.get("boundary_f"), 2),
            )
        )
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

        def line(cells: tuple[str, ...]) -> str:
            first = cells[0].ljust(widths[0])
            rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
            return "  ".join([first, *rest])

        lines.append(line(header))
        lines.extend(line(r) for r in rows[:-1])
        lines.append("-" * len(line(header)))
        lines.append(line(rows[-1]))
        lines.append(
            "agree: same label / pixels labelled by either; agree+bg: over all pixels; kappa: "
            f"Cohen's per pair, overall {o.get('kappa_kind', 'Cohen')}'"
            + ("s" if o.get("kappa_kind", "Cohen") == "Cohen" else "")
        )
        tol = "/".join(str(t) for t in self.settings.get("boundary_tolerance_px", [])) or "-"
        lines.append(
            "naming / quantity / quality: shares of the disagreeing pixels; bF: boundary "
            f"F-score of matched instances (tolerance {tol} px)."
        )
        lines.append(
            f"Segments per image: mean variance across annotators "
            f"{_fmt(o.get('segments_variance'), 2)}."
        )
        if self.vocabulary:
            lines.append("Names one annotator used and another never did:")
            grouped: dict[tuple[str, str], list[VocabularyDrift]] = {}
            for v in self.vocabulary:
                grouped.setdefault((v.annotator, v.name), []).append(v)
            for (who, name), items in list(grouped.items())[:8]:
                others = ", ".join(v.never_used_by for v in items)
                co = sorted({c for v in items for c in v.co_located.split(";") if c})
                like = sorted({c for v in items for c in v.similar.split(";") if c})
                hint = "; ".join(
                    x
                    for x in (
                        co and f"overlaps {', '.join(co)}",
                        like and f"like {', '.join(like)}",
                    )
                    if x
                )
                lines.append(
                    f"  {who}: {name!r} (never used by {others})" + (f" - {hint}" if hint else "")
                )
            if len(grouped) > 8:
                lines.append(f"  ... {len(grouped) - 8} more in vocabulary.csv")
        if self.staple:
            lines.append(
                "STAPLE sensitivity / specificity per annotator (concepts weighted by consensus "
                "pixels):"
            )
            by_annotator: dict[str, list[StapleEstimate]] = {}
            for s in self.staple:
                by_annotator.setdefault(s.annotator, []).append(s)
            for name in sorted(by_annotator):
                rows_ = [s for s in by_annotator[name] if s.pixels and s.sensitivity is not None]
                px = sum(s.pixels for s in rows_)
                sens = sum(s.pixels * (s.sensitivity or 0.0) for s in rows_) / px if px else None
                spec = sum(s.pixels * (s.specificity or 0.0) for s in rows_) / px if px else None
                lines.append(f"  {name}: {_fmt(sens, 3)} / {_fmt(spec, 4)}")
        return "\n".join(lines)


def _fmt(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.1f}%"


def _clean(value: Any) -> Any:
    """Round floats to 6 decimals and turn NaN/inf into None, recursively."""
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        return round(value, 6)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) or math.isinf(value) else f"{value:.6f}"
    text = str(value)
    if isinstance(value, str) and _formula_like(text):
        return "'" + text  # a spreadsheet shows it as text instead of running it
    return text


def _formula_like(text: str) -> bool:
    """True for text a spreadsheet would run: ``=``, ``+``, ``@``, tab or CR first, or ``-``
    not followed by digits only."""
    first = text[:1]
    return first in ("=", "+", "@", "\t", "\r") or (first == "-" and not text[1:].isdigit())


def _csv(record: type, rows: list[Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    names = [f.name for f in fields(record)]
    writer.writerow(names)
    for row in rows:
        writer.writerow([_cell(getattr(row, n)) for n in names])
    return buf.getvalue()
