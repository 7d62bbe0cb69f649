"""The finding record, the table of codes, and the collector that caps findings per code."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# code -> (name, severity, default one-line fix)
CODES: dict[str, tuple[str, str, str]] = {
    "E101": ("missing-file", "error", "create the file (conceptkit convert writes every file)"),
    "E102": ("unreadable-file", "error", "make the file readable and UTF-8 encoded CSV"),
    "E103": ("bad-header", "error", "make the first line exactly the header the schema names"),
    "E104": ("missing-reference", "error", "add the file or fix the path (relative to images/)"),
    "E105": ("unreadable-reference", "error", "re-export the file as a valid PNG/JPEG"),
    "E106": ("bad-type", "error", "write a value of the column's type"),
    "E107": ("bad-value", "error", "write a value within the column's constraints"),
    "E108": ("bad-row", "error", "give the row exactly one cell per header column"),
    "E109": ("duplicate-key", "error", "keep one row per key"),
    "E110": (
        "path-outside",
        "error",
        "give a path relative to images/ that stays inside it (no /, .., or links out)",
    ),
    "E111": (
        "over-limit",
        "error",
        "check the value; if the data is trusted, raise the limit with CONCEPTKIT_LIMIT_<NAME>=N",
    ),
    "E201": ("duplicate-image", "error", "list each image once in index.csv"),
    "E202": ("image-size", "error", "set ih/iw to the image's real size"),
    "E203": ("plane-size", "error", "set sh/sw to the plane's real size or resize the plane"),
    "E204": ("not-square", "error", "crop/resize images to a square (or pass --no-netdissect)"),
    "E205": ("mixed-sizes", "error", "resize every image (and plane) to one size"),
    "E301": ("unknown-label", "error", "add the label to label.csv or fix the pixel value"),
    "E302": ("wrong-category", "error", "add the label to c_<cat>.csv or fix the plane"),
    "E303": ("image-label-category", "error", "use a label number of this category"),
    "E401": ("category-stats", "error", "rewrite category.csv from c_<cat>.csv and the pixels"),
    "E402": ("label-frequency", "error", "rewrite label.csv frequencies from the pixels"),
    "E403": ("label-coverage", "error", "rewrite label.csv coverages from the pixels"),
    "E404": ("code-frequency", "error", "rewrite c_<cat>.csv frequencies from the pixels"),
    "E405": ("code-coverage", "error", "rewrite c_<cat>.csv coverages from the pixels"),
    "E406": ("category-field", "error", "write the category field as cat(n) or cat(n);cat2(m)"),
    "E407": ("codes-not-dense", "error", "number the codes 1..count in order"),
    "E408": ("code-name", "error", "use the same name as label.csv"),
    "E409": (
        "label-category",
        "error",
        "make label.csv's category field list exactly the "
        "categories whose c_<cat>.csv holds the label",
    ),
    "E410": ("code-unknown-label", "error", "add the label to label.csv or drop the row"),
    "E501": ("category-without-column", "error", "add the category's column to index.csv"),
    "E502": ("column-without-category", "error", "add the category to category.csv"),
    "W601": (
        "rare-label",
        "warning",
        "merge or drop the label (Broden kept labels in >= 10 images)",
    ),
    "W602": ("orphan-file", "warning", "delete the file or reference it from index.csv"),
    "W603": ("stats-skipped", "warning", "fix the unreadable planes, then validate again"),
}


@dataclass
class Finding:
    """One problem found in a Broden folder.

    ``code`` is stable (``E104``), ``name`` its slug (``missing-reference``); ``file`` is relative
    to the folder; ``line`` is the 1-based CSV line, ``column`` the CSV column, ``detail`` a pixel
    position/value or other locator; ``count`` > 1 marks a summary of findings not listed one by
    one.
    """

    code: str
    severity: str
    file: str
    message: str
    hint: str
    line: int | None = None
    column: str | None = None
    detail: str | None = None
    count: int = 1
    name: str = field(default="")

    def __post_init__(self) -> None:
        if not self.name:
            self.name = CODES[self.code][0]

    @property
    def place(self) -> str:
        """Human text of where: ``line 12, column object, pixel (y=3, x=7)``."""
        parts = []
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.column is not None:
            parts.append(f"column {self.column}")
        if self.detail:
            parts.append(self.detail)
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["place"] = self.place
        return d


def finding(
    code: str,
    file: str,
    message: str,
    *,
    line: int | None = None,
    column: str | None = None,
    detail: str | None = None,
) -> Finding:
    """A :class:`Finding` of ``code`` with the code's severity and default hint."""
    _, severity, hint = CODES[code]
    return Finding(code, severity, file, message, hint, line=line, column=column, detail=detail)


_SEVERITY_ORDER = {"error": 0, "warning": 1}


class Collector:
    """Gathers findings in emission order, listing at most ``max_per_code`` of each code."""

    def __init__(self, max_per_code: int) -> None:
        self.max_per_code = max_per_code
        self.findings: list[Finding] = []
        self.per_code: dict[str, int] = {}
        self.overflow: dict[str, int] = {}

    def add(self, f: Finding) -> None:
        n = self.per_code.get(f.code, 0)
        self.per_code[f.code] = n + 1
        if n < self.max_per_code:
            self.findings.append(f)
        else:
            self.overflow[f.code] = self.overflow.get(f.code, 0) + 1

    def skip(self, code: str, n: int) -> None:
        """Count ``n`` findings of ``code`` known to be past the cap (not listed)."""
        self.per_code[code] = self.per_code.get(code, 0) + n
        self.overflow[code] = self.overflow.get(code, 0) + n

    def emit(
        self,
        code: str,
        file: str,
        message: str,
        *,
        line: int | None = None,
        column: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.add(finding(code, file, message, line=line, column=column, detail=detail))

    def result(self) -> list[Finding]:
        """The listed findings plus one summary per capped code, errors first, by code."""
        out = list(self.findings)
        for code, n in sorted(self.overflow.items()):
            name, severity, hint = CODES[code]
            out.append(
                Finding(
                    code=code,
                    severity=severity,
                    file="(several)",
                    message=f"{n} more {code} {name} findings not listed",
                    hint=hint,
                    count=n,
                )
            )
        out.sort(
            key=lambda f: (_SEVERITY_ORDER[f.severity], f.code, f.count > 1, f.file, f.line or 0)
        )
        return out


def summary(findings: Sequence[Finding]) -> dict[str, int]:
    """Finding count per code (summaries counted by their ``count``)."""
    out: dict[str, int] = {}
    for f in findings:
        out[f.code] = out.get(f.code, 0) + f.count
    return out
