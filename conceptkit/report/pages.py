"""The report's HTML pages: an index and one page per layer, from templates shipped beside this.

Pages are built as strings with every value escaped; CSS and JS are inlined (no CDN, no server),
so ``html/`` opens from the file system. The same run gives byte-identical pages.
"""

from __future__ import annotations

import html
import re
from importlib import resources
from typing import Any

from conceptkit import __version__
from conceptkit.report.run import LayerInfo, RunInfo, UnitInfo, category_colors

OFFICIAL = "official (per-category distinct labels)"
NAIVE = "naive (distinct top labels)"
DEFINITIONS = (
    f"<b>{OFFICIAL}</b>: for each category, the number of distinct labels among units whose best "
    "IoU within that category passes the cut, summed over categories (the definition of the "
    f"Network Dissection code). <b>{NAIVE}</b>: the number of distinct best labels among "
    "detector units, counted in the category of that label."
)


def _asset(name: str) -> str:
    return resources.files("conceptkit.report").joinpath(name).read_text(encoding="utf-8")


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def safe_name(layer: str) -> str:
    """A file-name-safe form of a layer name (dotted module names pass unchanged)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", layer)


def strip_name(layer: str, unit: int) -> str:
    """NetDissect-Lite's strip file name, 0-based unit: ``<layer>-<unit:04d>.jpg``."""
    return f"{safe_name(layer)}-{unit:04d}.jpg"


def layer_page(layer: str) -> str:
    return f"layer-{safe_name(layer)}.html"


def fmt_iou(x: float) -> str:
    return f"{x:.4f}"


def page(title: str, heading: str, subheading: str, nav: str, body: str, footer: str) -> str:
    """Fill the page template (inline CSS and JS)."""
    text = _asset("page.html")
    parts = {
        "version": esc(__version__),
        "title": esc(title),
        "heading": heading,
        "subheading": subheading,
        "nav": nav,
        "css": _asset("report.css").rstrip("\n"),
        "js": _asset("report.js").rstrip("\n"),
        "body": body,
        "footer": footer,
    }
    return re.sub(r"\{\{(\w+)\}\}", lambda m: parts[m.group(1)], text)


def _kv(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><td>{esc(k)}</td><td>{v}</td></tr>\n" for k, v in rows)
    return f'<table class="kv">\n{cells}</table>'


def _num(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _value(v: Any) -> str:
    """A settings/data value as HTML: sizes as ``a × b``, floats to 6 digits, lists joined."""
    if isinstance(v, list | tuple):
        sep = " × " if v and all(isinstance(x, int) for x in v) else ", "
        return esc(sep.join(_num(x) for x in v))
    if v is None or v == "":
        return '<span class="note">—</span>'
    return esc(_num(v))


def _figure(src: str, caption: str, alt: str) -> str:
    svg = src[: -len(".png")] + ".svg"
    return (
        f'<figure><a href="{esc(svg)}"><img src="{esc(src)}" alt="{esc(alt)}"></a>'
        f'<figcaption>{caption} · <a href="{esc(svg)}">SVG</a></figcaption></figure>'
    )


def index_page(run: RunInfo, plots: dict[str, list[str]], notes: str = "") -> str:
    """The index: model, data, settings, per layer detector counts, the plots.

    ``plots`` maps a section ("" for the whole run, else a layer name) to plot PNG paths relative
    to ``html/``; ``notes``: HTML of a panel placed after the layers (empty: none).
    """
    res = run.results
    model, data, settings = res.get("model", {}), res.get("data", {}), res.get("settings", {})
    cats = run.categories
    colors = category_colors(cats)
    cut = run.iou_threshold
    facts = '<div class="facts">'
    facts += "<div><h3>Model</h3>" + _kv(
        [(k, _value(model.get(k))) for k in ("spec", "description", "fingerprint")]
    )
    facts += "</div><div><h3>Data</h3>" + _kv(
        [
            ("path", f"<code>{esc(data.get('path', ''))}</code>"),
            ("fingerprint", _value(data.get("fingerprint"))),
            ("images", _value(data.get("images"))),
            ("categories", _value(data.get("categories"))),
            ("image size", _value(data.get("image_size"))),
            ("segmentation size", _value(data.get("seg_size"))),
        ]
    )
    facts += "</div><div><h3>Settings</h3>" + _kv(
        [(k, _value(settings[k])) for k in sorted(settings)]
    )
    facts += "</div></div>"

    head = (
        "<tr><th>layer</th><th>units</th><th>map size</th><th>detectors (IoU &gt; "
        f"{esc(f'{cut:g}')})</th><th>unique detectors, {esc(OFFICIAL)}</th>"
        f"<th>unique detectors, {esc(NAIVE)}</th></tr>"
    )
    rows = ""
    for lay in run.layers:
        rows += (
            f'<tr><td><a href="{esc(layer_page(lay.name))}">{esc(lay.name)}</a></td>'
            f"<td>{lay.units}</td><td>{_value(list(lay.map_size))}</td><td>{lay.detectors}</td>"
            f"<td>{lay.unique_official_total}</td><td>{lay.unique_naive_total}</td></tr>\n"
        )
    layers = f'<table class="grid">\n{head}\n{rows}</table>'

    chead = "<tr><th>category</th>" + "".join(
        f'<th colspan="2">{esc(lay.name)}</th>' for lay in run.layers
    )
    chead += "</tr>\n<tr><th></th>" + "<th>official</th><th>naive</th>" * len(run.layers) + "</tr>"
    crows = ""
    for c in cats:
        crows += f'<tr><td><span class="swatch" style="--c:{colors[c]}"></span>{esc(c)}</td>'
        for lay in run.layers:
            link = f"{layer_page(lay.name)}#category={c}"
            crows += (
                f'<td><a href="{esc(link)}">{lay.unique_official.get(c, 0)}</a></td>'
                f"<td>{lay.unique_naive.get(c, 0)}</td>"
            )
        crows += "</tr>\n"
    percat = f'<table class="grid">\n{chead}\n{crows}</table>'

    plot_html = ""
    for section, srcs in plots.items():
        if section:
            plot_html += f'<h3>Layer <a href="{esc(layer_page(section))}">{esc(section)}</a></h3>\n'
        figs = "".join(_figure(s, esc(_caption(s)), _caption(s)) for s in srcs)
        plot_html += f'<div class="plots">{figs}</div>\n'

    body = (
        f'<section class="panel">{facts}</section>\n'
        f'<section class="panel"><h2>Layers</h2>\n{layers}\n'
        f"<h3>Unique detectors per category</h3>\n{percat}\n"
        f'<p class="note">A unit is a detector when its best IoU exceeds {esc(f"{cut:g}")}. '
        f"{DEFINITIONS}</p></section>\n"
        + (f'<section class="panel">{notes}</section>\n' if notes else "")
        + (
            f'<section class="panel">{baseline_html(res["baseline"])}</section>\n'
            if res.get("baseline")
            else ""
        )
        + f'<section class="panel"><h2>Plots</h2>\n{plot_html}</section>'
    )
    nav = " ".join(
        f'<a href="{esc(layer_page(lay.name))}">{esc(lay.name)}</a>' for lay in run.layers
    )
    title = f"Network Dissection: {run.name}"
    sub = esc(f"{data.get('images', '?')} images of {data.get('path', '')}")
    return page(title, esc(title), sub, "Layers: " + nav, body, _footer(run))


def _caption(src: str) -> str:
    name = src.rsplit("/", 1)[-1][: -len(".png")]
    if name == "category_share":
        return "Share of units detecting each category, per layer"
    if name == "iou_histogram":
        return "Distribution of the units' best IoU"
    if name.startswith("unique_"):
        return "Unique detectors per category (absolute and share of units)"
    if name.startswith("concepts_"):
        return "Detector units per concept of " + name.rsplit("__", 1)[-1]
    if name == "baseline_official":
        return "Unique detectors per category: trained against random weights"
    return name


BASELINE_ROWS = (
    ("detectors", "detectors"),
    ("unique_detectors_official", "unique detectors, official"),
    ("unique_detectors_naive", "unique detectors, naive"),
    ("mean_best_iou", "mean IoU of the best labels"),
    ("detectors_near_chance", "detectors near chance (z &lt; 3)"),
    ("detectors_few_images", "detectors on labels of &lt; 10 images"),
    ("detectors_unflagged", "detectors unflagged"),
)


def baseline_html(baseline: dict[str, Any]) -> str:
    """results.json's ``baseline`` as a table: per layer, the trained and the random weights."""
    layers = baseline.get("layers", {})
    head = "<tr><th></th>" + "".join(f'<th colspan="2">{esc(name)}</th>' for name in layers)
    head += "</tr>\n<tr><th></th>" + "<th>trained</th><th>random</th>" * len(layers) + "</tr>"
    rows = ""
    for key, what in BASELINE_ROWS:
        if not all(key in side for lay in layers.values() for side in lay.values()):
            continue
        rows += f"<tr><td>{what}</td>"
        for lay in layers.values():
            for side in ("trained", "random"):
                v = lay[side][key]
                rows += f"<td>{esc(f'{v:.4f}' if isinstance(v, float) else v)}</td>"
        rows += "</tr>\n"
    folder = esc(baseline.get("folder", "baseline"))
    return (
        "<h2>Trained against random weights</h2>\n"
        f'<table class="grid">\n{head}\n{rows}</table>\n'
        f'<p class="note">The same architecture with random weights (seed '
        f"{esc(baseline.get('seed'))}), dissected the same way into <code>{folder}/</code>: "
        "the detectors a model has only because of its size and shape.</p>"
    )


def _footer(run: RunInfo) -> str:
    if run.source:
        return (
            f"Made by conceptkit {esc(__version__)} from the tally files of a "
            f"{esc(run.source)} (read, never written): <code>{esc(run.out)}</code>. Unit numbers "
            "are 0-based (the <code>unit</code> column of the tally is 1-based); the image "
            "strips are the folder's own."
        )
    return (
        f"Made by conceptkit {esc(run.results.get('conceptkit_version', __version__))} "
        "from results.json, tally_*.csv, quantile_*.npy and topn_*.npz. Unit numbers are 0-based "
        "(the <code>unit</code> column of tally_*.csv is 1-based). Masks: the raw map upsampled "
        "bilinearly to the image and compared with the unit's threshold."
    )


def _strip_html(run: RunInfo, lay: LayerInfo, u: UnitInfo, n_images: int, size: Any) -> str:
    """The card's strip: drawn by conceptkit (``size`` None), copied from a foreign folder
    (``size`` = its ``(width, height)``), or a note saying it is missing (``size`` a string:
    why)."""
    src = f"image/{strip_name(lay.name, u.unit)}"
    tip = f"{lay.name} unit {u.unit}: {u.label} ({u.category}), IoU {fmt_iou(u.iou)}"
    if isinstance(size, str):
        return f'<p class="note missing">no image strip: {esc(size)}</p>\n'
    if size is None:
        ih, iw = run.results["data"].get("image_size", [224, 224])
        from conceptkit.report.strips import GAP

        width = max(n_images * iw + (n_images - 1) * GAP, 1)
        alt = f"top {n_images} images of unit {u.unit}"
    else:
        width, ih = size
        alt = f"top images of unit {u.unit}"
    return (
        f'<a class="strip" href="{esc(src)}" title="{esc(tip)}"><img src="{esc(src)}" '
        f'alt="{alt}" width="{width}" height="{ih}" '
        f'loading="lazy" decoding="async"></a>\n'
    )


def _card(
    run: RunInfo,
    lay: LayerInfo,
    u: UnitInfo,
    n_images: int,
    colors: dict[str, str],
    size: Any = None,
    extra: str = "",
) -> str:
    """One unit's card; ``size``: see :func:`_strip_html`; ``extra``: HTML added at its end."""
    below = u.iou <= run.iou_threshold
    color = colors.get(u.category, "#888")
    runners = "".join(
        f'<span title="IoU {fmt_iou(r.iou)}">{esc(r.label)} <small>({esc(r.category)}, '
        f"{fmt_iou(r.iou)})</small></span>"
        for r in u.runners_up
    )
    text = " ".join(
        [f"unit {u.unit}", u.label, u.category] + [f"{r.label} {r.category}" for r in u.runners_up]
    ).lower()
    return (
        f'<article class="card{" below" if below else ""}" id="unit-{u.unit}" '
        f'data-unit="{u.unit}" data-category="{esc(u.category)}" data-label="{esc(u.label)}" '
        f'data-iou="{fmt_iou(u.iou)}" data-text="{esc(text)}" style="--c:{color}">\n'
        f'<div class="head"><span class="unit">unit {u.unit}</span>'
        f'<span class="label">{esc(u.label)}</span>'
        f'<span class="chip">{esc(u.category)}</span>'
        f'<span class="iou" title="threshold {u.threshold:.6g}">IoU {fmt_iou(u.iou)}</span></div>\n'
        + _strip_html(run, lay, u, n_images, size)
        + (f'<div class="runners">also {runners}</div>\n' if runners else "")
        + extra
        + "</article>"
    )


def sorted_units(run: RunInfo, lay: LayerInfo) -> list[UnitInfo]:
    """Detectors by IoU descending, then the units below the cut by IoU; ties by unit."""
    cut = run.iou_threshold
    return sorted(lay.unit_info, key=lambda u: (u.iou <= cut, -u.iou, u.unit))


def layer_html(
    run: RunInfo,
    lay: LayerInfo,
    n_images: dict[int, int],
    sizes: dict[int, Any] | None = None,
    extras: dict[int, str] | None = None,
) -> str:
    """One layer's page: every unit as a card with its strip; filter, concept and search boxes.

    ``sizes`` (foreign folders): unit -> the copied strip's ``(width, height)``, or why it is
    missing (see :func:`_strip_html`); ``extras``: unit -> HTML added to its card."""
    sizes = sizes or {}
    extras = extras or {}
    cats = run.categories
    colors = category_colors(cats)
    cut = run.iou_threshold
    units = sorted_units(run, lay)
    present = [c for c in cats if any(u.category == c for u in units)]
    present += sorted({u.category for u in units} - set(present))
    labels = sorted({u.label for u in units})
    cat_opts = "".join(f'<option value="{esc(c)}">{esc(c)}</option>' for c in present)
    lab_opts = "".join(f'<option value="{esc(x)}">{esc(x)}</option>' for x in labels)
    chips = "".join(
        f'<button type="button" class="chip" style="--c:{colors.get(c, "#888")}" '
        f'data-category="{esc(c)}" aria-pressed="false">{esc(c)} '
        f"{sum(1 for u in units if u.category == c and u.iou > cut)}</button>"
        for c in present
    )
    toolbar = (
        '<div class="toolbar">'
        '<input type="search" id="search" placeholder="Search unit, concept, category…" '
        'aria-label="search">'
        '<label>category <select id="category"><option value="">all</option>'
        f"{cat_opts}</select></label>"
        '<label>concept <select id="concept"><option value="">all</option>'
        f"{lab_opts}</select></label>"
        '<label><input type="checkbox" id="show-below" checked> units below the cut</label>'
        '<span class="count" id="count"></span></div>'
    )
    cards = []
    divider_done = False
    for u in units:
        if u.iou <= cut and not divider_done:
            cards.append(
                f'<div class="divider">Units below the cut (best IoU ≤ {esc(f"{cut:g}")})</div>'
            )
            divider_done = True
        cards.append(
            _card(
                run,
                lay,
                u,
                n_images.get(u.unit, 0),
                colors,
                sizes.get(u.unit),
                extras.get(u.unit, ""),
            )
        )
    legend = f'<div class="legend">Detectors per category (click to filter): {chips}</div>'
    body = f'{toolbar}\n{legend}\n<div class="cards" id="cards">\n' + "\n".join(cards) + "\n</div>"
    nav = '<a href="index.html">← index</a> ' + " ".join(
        f'<a href="{esc(layer_page(x.name))}">{esc(x.name)}</a>' for x in run.layers
    )
    sub = esc(
        f"{lay.units} units · {lay.detectors} detectors (IoU > {cut:g}) · unique detectors "
        f"{lay.unique_official_total} official, {lay.unique_naive_total} naive · {run.name}"
    )
    return page(f"{lay.name} · {run.name}", "Layer " + esc(lay.name), sub, nav, body, _footer(run))


def _compare_caption(src: str) -> str:
    name = src[: -len(".png")]
    if name.startswith("compare_"):
        return "Unique detectors per category, " + name[len("compare_") :]
    if name == "detector_share":
        return "Share of units detecting each category across the layers, one panel per model"
    layer, _, cat = name[len("concepts_") :].partition("__")
    return f"Detector units per concept of {cat}, layer {layer}, the models side by side"


def compare_html(names: list[str], runs: list[RunInfo], plots: list[str]) -> str:
    """The comparison page of several runs: a table and the comparison plots."""
    cats: list[str] = []
    for run in runs:
        cats += [c for c in run.categories if c not in cats]
    head = "<tr><th>run</th><th>layer</th><th>units</th><th>detectors</th>"
    head += f"<th>unique, {esc(OFFICIAL)}</th><th>unique, {esc(NAIVE)}</th>"
    head += "".join(f"<th>{esc(c)}</th>" for c in cats) + "</tr>"
    rows = ""
    for name, run in zip(names, runs):
        for lay in run.layers:
            rows += (
                f"<tr><td>{esc(name)}</td><td>{esc(lay.name)}</td><td>{lay.units}</td>"
                f"<td>{lay.detectors}</td><td>{lay.unique_official_total}</td>"
                f"<td>{lay.unique_naive_total}</td>"
                + "".join(f"<td>{lay.unique_official.get(c, 0)}</td>" for c in cats)
                + "</tr>\n"
            )
    figs = "".join(_figure(p, esc(_compare_caption(p)), p) for p in plots)
    body = (
        f'<section class="panel"><h2>Runs</h2><table class="grid">\n{head}\n{rows}</table>'
        f'<p class="note">Per-category columns: {esc(OFFICIAL)}. {DEFINITIONS}</p></section>\n'
        f'<section class="panel"><h2>Plots</h2><div class="plots">{figs}</div></section>'
    )
    title = "Network Dissection: " + ", ".join(names)
    return page(title, "Comparison", esc(f"{len(runs)} runs"), "", body, "Made by conceptkit.")
