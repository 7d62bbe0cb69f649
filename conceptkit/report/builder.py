"""Build a run's report (``OUT/html``, ``OUT/plots``) and the comparison of several runs.

Reads only the files ``conceptkit dissect`` wrote and the dataset's images; never the model.
Strips are redrawn only when an input changed: ``html/image/manifest.json`` holds a hash of each
strip's inputs, and an unchanged strip is carried over from the previous report.

``html/`` and ``plots/`` are built together in one temporary folder inside OUT and swapped in
together (:func:`staged`): a report that fails, or is interrupted, leaves OUT as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from conceptkit.broden import read_index
from conceptkit.errors import LayoutError, UsageError
from conceptkit.outdir import atomic_dir, check_target, mark, signals_held
from conceptkit.report import extras, pages, plots
from conceptkit.report.run import RunInfo, TopN, layer_file, load_quantile, load_run, load_topn
from conceptkit.report.strips import StripJob, file_hash, job_hash, render_jobs

MANIFEST = "manifest.json"
REPORT_DIRS = ("html", "plots")


def _carry(src: Path, dst: Path) -> None:
    """Hard-link (else copy) an unchanged strip from the previous report."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _read_manifest(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {str(k): str(v) for k, v in data.get("strips", {}).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def check_data(run: RunInfo) -> Path:
    """The run's dataset folder; LayoutError when it is not there."""
    root = run.data_root()
    if not (root / "index.csv").is_file():
        raise LayoutError(
            "the dataset of this run is not there (results.json data.path)",
            file=root,
            hint="the report draws the top images from it",
        )
    return root


def _swap(tmp: Path, out: Path) -> None:
    """Move ``OUT/html`` and ``OUT/plots`` into ``tmp`` and ``tmp``'s into OUT, as one step:
    signals are held meanwhile, and a failed rename undoes the ones done."""
    done: list[tuple[Path, Path]] = []
    with signals_held():
        try:
            for name in REPORT_DIRS:
                if (out / name).exists():
                    os.replace(out / name, tmp / f"old-{name}")
                    done.append((out / name, tmp / f"old-{name}"))
            for name in REPORT_DIRS:
                os.replace(tmp / name, out / name)
                done.append((tmp / name, out / name))
        except BaseException:
            for src, dst in reversed(done):
                os.replace(dst, src)
            raise


@contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A temporary folder in ``out`` holding empty ``html/`` and ``plots/``; when the block
    succeeds they replace ``out/html`` and ``out/plots`` together. On any failure (Ctrl-C and
    SIGTERM included) the temporary folder is removed and ``out`` is left as it was."""
    for name in REPORT_DIRS:
        check_target(out / name, force=True)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=".report.tmp-", dir=out))
    except OSError as exc:
        raise UsageError(f"cannot be written ({exc.strerror or exc})", file=out) from None
    try:
        for name in REPORT_DIRS:
            (tmp / name).mkdir()
        yield tmp
        for name in REPORT_DIRS:
            mark(tmp / name)
        _swap(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _top_rows(top: TopN, unit: int, rows: int, path: Path) -> list[int]:
    """Unit ``unit``'s top images as index.csv rows; LayoutError for one past the dataset."""
    out = top.indices[unit].tolist()
    for j, r in enumerate(out):
        if not 0 <= r < rows:
            raise LayoutError(
                f"names image row {r}, the dataset's index.csv has {rows} rows",
                file=path,
                place=f"indices[{unit}, {j}]",
                hint="was the dataset changed after the run?",
            )
    return out


def strip_jobs(run: RunInfo, image_dir: Path) -> tuple[list[StripJob], dict[str, dict[int, int]]]:
    """One :class:`StripJob` per unit of every layer, writing into ``image_dir``.

    Also returns, per layer, unit -> number of images in its strip.
    """
    root = check_data(run)
    rows = read_index(root)
    size = run.results["data"].get("image_size") or [rows[0].ih, rows[0].iw]
    tile = (int(size[0]), int(size[1]))
    jobs: list[StripJob] = []
    counts: dict[str, dict[int, int]] = {}
    for lay in run.layers:
        q = load_quantile(run, lay)
        top = load_topn(run, lay)
        path = layer_file(run, lay, "topn")
        if top.indices.shape[0] != lay.units:
            raise LayoutError(
                f"has {top.indices.shape[0]} units, results.json says {lay.units}", file=path
            )
        counts[lay.name] = {}
        for u in range(lay.units):
            tops = _top_rows(top, u, len(rows), path)
            jobs.append(
                StripJob(
                    out=str(image_dir / pages.strip_name(lay.name, u)),
                    images=tuple(str(root / "images" / rows[r].image) for r in tops),
                    maps=top.maps[u],
                    threshold=float(q[u]),
                    tile=tile,
                )
            )
            counts[lay.name][u] = len(tops)
    return jobs, counts


def write_plots(run: RunInfo, target: Path) -> dict[str, list[str]]:
    """Draw every plot of a run into ``target``; returns section -> PNG names (see index_page)."""
    made: dict[str, list[str]] = {"": []}
    fig, _ = plots.category_share_figure(run)
    plots.save(fig, target / "category_share")
    fig, _ = plots.iou_histogram_figure(run)
    plots.save(fig, target / "iou_histogram")
    made[""] += ["category_share.png", "iou_histogram.png"]
    for lay in run.layers:
        name = pages.safe_name(lay.name)
        fig, _ = plots.unique_detectors_figure(run, lay)
        plots.save(fig, target / f"unique_{name}")
        made[lay.name] = [f"unique_{name}.png"]
        for cat in run.categories:
            if plots.concept_counts(run, lay, cat):
                fig, _ = plots.concepts_figure(run, lay, cat)
                stem = f"concepts_{name}__{pages.safe_name(cat)}"
                plots.save(fig, target / stem)
                made[lay.name].append(stem + ".png")
    base = run.out / "baseline"
    if run.results.get("baseline") and (base / "results.json").is_file():
        fig, _ = plots.compare_figure([run, load_run(base)], ["trained", "random weights"])
        plots.save(fig, target / "baseline_official")
        made[""].append("baseline_official.png")
    return made


def build(
    out_dir: str | Path,
    *,
    force_images: bool = False,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Rebuild ``OUT/html`` and ``OUT/plots`` of a finished run; returns the index page's path.

    ``workers``: processes drawing strips (default: CPU count, at most 8; 1 = no pool).
    ``force_images``: redraw every strip even when its inputs are unchanged.
    ``progress(done, total)`` is called after each strip drawn.
    """
    out = Path(out_dir)
    run = load_run(out)
    check_data(run)
    old_images = out / "html" / "image"
    old = {} if force_images else _read_manifest(old_images / MANIFEST)
    with staged(out) as tmp:
        made = write_plots(run, tmp / "plots")
        _write_html(run, tmp / "html", made, old_images, old, workers, progress)
    return out / "html" / "index.html"


def _write_html(
    run: RunInfo,
    target: Path,
    made: dict[str, list[str]],
    old_images: Path,
    old: dict[str, str],
    workers: int | None,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Pages and strips into ``target`` (strips unchanged since ``old`` carried over); ``made``:
    the plots drawn (see :func:`write_plots`)."""
    image_dir = target / "image"
    image_dir.mkdir()
    jobs, counts = strip_jobs(run, image_dir)
    hashes: dict[str, str] = {}
    manifest: dict[str, str] = {}
    todo = []
    for job in jobs:
        for p in job.images:
            if p not in hashes:
                hashes[p] = file_hash(p)
        name = Path(job.out).name
        manifest[name] = job_hash(job, hashes)
        prev = old_images / name
        if old.get(name) == manifest[name] and prev.is_file():
            _carry(prev, Path(job.out))
        else:
            todo.append(job)
    render_jobs(todo, workers=workers, progress=progress)
    (image_dir / MANIFEST).write_text(
        json.dumps({"strips": manifest, "version": 1}, indent=1, sort_keys=True) + "\n",
        encoding="utf-8",
    )
    plot_links = {k: [f"../plots/{p}" for p in v] for k, v in made.items()}
    more = {lay.name: extras.load_extras(run, lay) for lay in run.layers}
    (target / "index.html").write_text(
        pages.index_page(run, plot_links, extras.index_html(run, more)), encoding="utf-8"
    )
    for lay in run.layers:
        (target / pages.layer_page(lay.name)).write_text(
            pages.layer_html(run, lay, counts[lay.name], None, extras.card_html(more[lay.name])),
            encoding="utf-8",
        )


def _any_run(path: Path) -> RunInfo:
    """A conceptkit run, or a foreign folder (NetDissect-Lite's, NetDissect's) read from its
    tally files."""
    from conceptkit.report import is_foreign

    if not is_foreign(path):
        return load_run(path)
    from conceptkit.analysis.runs import load
    from conceptkit.report.foreign import run_info

    return run_info(load(path))


def compare_figures(paths: list[Path], target: Path) -> list[str]:
    """The chapter's model-against-model figures into ``target`` (PNG + SVG); returns the PNGs.

    ``detector_share``: share of units per category across the layers, one panel per model;
    ``concepts_<layer>__<category>``: detector units per concept, the models side by side, for
    each layer every run has and each category with a detector in one of them.
    """
    from conceptkit.analysis import counts, figures
    from conceptkit.analysis.runs import load

    runs = [load(p) for p in paths]
    fig, _ = figures.detector_share_figure(counts.detectors_per_category(runs))
    plots.save(fig, target / "detector_share")
    made = ["detector_share.png"]
    shared = [
        lay.name
        for lay in runs[0].layers
        if all(any(x.name == lay.name for x in r.layers) for r in runs[1:])
    ]
    cats = list(dict.fromkeys(c for r in runs for c in r.categories))
    for layer in shared:
        for cat in cats:
            have = [counts.concept_counts(r, layer, iou_threshold=None) for r in runs]
            if not any((h["category"] == cat).any() for h in have):
                continue
            if not all(cat in r.layer(layer).categories for r in runs):
                continue
            fig, _ = figures.concepts_figure(runs, cat, layer=layer)
            stem = f"concepts_{pages.safe_name(layer)}__{pages.safe_name(cat)}"
            plots.save(fig, target / stem)
            made.append(stem + ".png")
    return made


def compare(runs: list[Path], out: Path, *, force: bool = False) -> Path:
    """Comparison plots of several runs into ``out`` (refused if it exists, unless ``force``).

    Writes ``compare_official`` and ``compare_naive`` (PNG, SVG) and ``index.html``; returns the
    index page's path.
    """
    if len(runs) < 2:
        raise UsageError("comparing needs at least two runs")
    infos = [_any_run(Path(r)) for r in runs]
    names = [r.name for r in infos]
    if len(set(names)) < len(names):
        names = [f"{n} ({Path(r).name})" for n, r in zip(names, runs)]
    out = Path(out)
    with atomic_dir(out, force=force) as tmp:
        made = []
        for definition in ("official", "naive"):
            fig, _ = plots.compare_figure(infos, names, definition)
            plots.save(fig, tmp / f"compare_{definition}")
            made.append(f"compare_{definition}.png")
        made += compare_figures([Path(r) for r in runs], tmp)
        (tmp / "index.html").write_text(pages.compare_html(names, infos, made), encoding="utf-8")
    return out / "index.html"
