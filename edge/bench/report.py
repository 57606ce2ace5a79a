"""What ``edge bench`` prints and writes: a short table on the terminal, and a report folder with
``bench.json``, charts (per backend configuration: latency histograms per stage, fps over time, the sweep as a
heat map) and ``report.md``, which embeds the charts and quotes the numbers.

matplotlib is the ``report`` extra (``pip install 'edge[report]'``): it is imported only here, inside
:func:`draw_charts`, and without it the folder still gets the JSON and the Markdown, which says how to get
the charts. Figures are made with :class:`matplotlib.figure.Figure` (no pyplot: no global state, no display).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from edge.bench.run import STAGES, Charted
from edge.files import write_atomic
from edge.paths import make_out_dir, safe_name

CHARTS_NEED = "charts need matplotlib: pip install 'edge[report]'"


def _layout(point: dict[str, Any] | None) -> str:
    return f"{point['workers']} workers × {point['threads']} threads" if point else "–"


def _best(run: dict[str, Any]) -> str:
    """The fastest sweep point and its ratio to the naive loop."""
    best = run["best"]
    return f"{_layout(best)}: {best['ratio']:.2f}× naive" if best else "–"


def summary(doc: dict[str, Any]) -> str:
    """The terminal's table: per backend configuration the pipeline/naive ratio, fps, best sweep point."""
    source = doc["source"]
    size = f" ({source['width']}×{source['height']})" if source.get("width") else ""
    load = doc["load_average"]
    lines = [f"edge bench: {', '.join(doc['bundles'])} on {Path(source['uri']).name}{size}, {source['frames']} "
             f"frames after {source['warmup']} of warm-up, {source['repeat']} round(s); {doc['cpus']} CPUs, load "
             f"{load['before'][0]} → {load['after'][0]}",
             f"{'backend':<24}{'pipeline/naive':>15}{'pipeline fps':>14}{'naive fps':>11}  best sweep point "
             "(medians of the rounds)"]
    for run in doc["runs"]:
        lines.append(f"{run['backend'] + ' ' + run['precision']:<24}{run['ratio']:>14.2f}×"
                     f"{statistics.median(run['pipeline']['fps']):>14.1f}"
                     f"{statistics.median(run['naive']['fps']):>11.1f}  {_best(run)}")
    for run in doc["runs"]:
        stages = ", ".join(f"{stage} {v['p50']:.1f}/{v['p99']:.1f}"
                           for stage, v in run["pipeline"]["latency_ms"].items())
        lines.append(f"latency p50/p99 ms, {run['backend']} {run['precision']}: {stages}")
    for backend, why in doc["skipped"].items():
        lines.append(f"not measured: {backend} ({why})")
    return "\n".join(lines)


def draw_charts(doc: dict[str, Any], charted: list[Charted], folder: Path) -> list[Path]:
    """The PNG charts of each backend configuration; raises ImportError without matplotlib."""
    from matplotlib.figure import Figure

    written = []
    for run, charts in zip(doc["runs"], charted):
        title = f"{', '.join(doc['bundles'])} · {run['backend']} {run['precision']}"
        stem = safe_name(run["name"])
        written.append(_latency_chart(Figure, charts, title, folder / f"latency-{stem}.png"))
        written.append(_fps_chart(Figure, run, title, folder / f"fps-{stem}.png"))
        if run["sweep"]:
            written.append(_sweep_chart(Figure, run, title, folder / f"sweep-{stem}.png"))
    return written


def _coarse(edges, counts, factor: int = 5):
    """Every ``factor`` neighbouring 2 % bins as one (about 10 % wide), so a few hundred samples read as a shape."""
    groups = -(-len(counts) // factor)
    padded = list(counts) + [0] * (groups * factor - len(counts))
    summed = [sum(padded[i * factor:(i + 1) * factor]) for i in range(groups)]
    kept = [edges[min(i * factor, len(edges) - 1)] for i in range(groups)] + [edges[-1]]
    return kept, summed


def _latency_chart(figure_type, charts: Charted, title: str, path: Path) -> Path:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    stages = [s for s in STAGES if s in charts.pipeline.stages]
    columns = 4
    rows = -(-len(stages) // columns)
    figure = figure_type(figsize=(14, 3.2 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, stage in zip(axes, stages):
        histogram = charts.pipeline.stages[stage]
        ax.stairs(*_coarse(*histogram.bins_ms())[::-1], fill=True, color="#4c72b0", alpha=0.85, label="pipeline")
        naive = charts.naive.stages.get(stage)
        if naive is not None and naive.count:
            ax.stairs(*_coarse(*naive.bins_ms())[::-1], color="#dd8452", linewidth=1.5, label="naive loop")
        for q, style in ((50, "-"), (99, ":")):
            ax.axvline(histogram.percentile_ms(q), color="black", linestyle=style, linewidth=1,
                       label=f"p{q} {histogram.percentile_ms(q):.1f} ms")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(stage)
        ax.set_xlabel("ms")
        ax.set_ylabel("frames")
        ax.legend(fontsize=7)
    for ax in axes[len(stages):]:
        ax.set_visible(False)
    figure.suptitle(f"Latency per stage (frames after warm-up) · {title}")
    figure.savefig(path, dpi=90)
    return path


def _fps_chart(figure_type, run: dict[str, Any], title: str, path: Path) -> Path:
    figure = figure_type(figsize=(10, 4), layout="constrained")
    ax = figure.subplots()
    for name, colour in (("pipeline", "#4c72b0"), ("naive", "#dd8452")):
        points = run["fps_over_time"][name]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], color=colour,
                    label=f"{name} (median of rounds {statistics.median(run[name]['fps']):.1f} fps)")
    ax.set_xlabel("seconds after warm-up")
    ax.set_ylabel("frames per second")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"Throughput over time, last round · pipeline/naive {run['ratio']:.2f}× · {title}")
    figure.savefig(path, dpi=90)
    return path


def _sweep_chart(figure_type, run: dict[str, Any], title: str, path: Path) -> Path:
    workers = sorted({p["workers"] for p in run["sweep"]})
    threads = sorted({p["threads"] for p in run["sweep"]})
    grid = [[float("nan")] * len(threads) for _ in workers]
    for point in run["sweep"]:
        grid[workers.index(point["workers"])][threads.index(point["threads"])] = point["ratio"]
    figure = figure_type(figsize=(2.2 + 1.6 * len(threads), 1.6 + 1.1 * len(workers)), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(grid, cmap="viridis", origin="lower", aspect="auto")
    for point in run["sweep"]:
        row, column = workers.index(point["workers"]), threads.index(point["threads"])
        ax.text(column, row, f"{point['ratio']:.2f}×\n{point['fps']:.1f} fps", ha="center", va="center",
                fontsize=9, bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
    ax.set_xticks(range(len(threads)), [str(t) for t in threads])
    ax.set_yticks(range(len(workers)), [str(w) for w in workers])
    ax.set_xlabel("threads per worker")
    ax.set_ylabel("inference workers")
    figure.colorbar(image, ax=ax, label="× naive loop")
    ax.set_title(f"Sweep · {title}", fontsize=9)
    figure.savefig(path, dpi=90)
    return path


def markdown(doc: dict[str, Any], charts: list[Path], note: str | None) -> str:
    """``report.md``: the run, the ratios, the per-stage latency, the sweep, the charts embedded."""
    source, load = doc["source"], doc["load_average"]
    lines = [f"# edge bench: {', '.join(doc['bundles'])}", "",
             f"- source: `{source['uri']}`" + (f" ({source['width']}×{source['height']}, {source['fps']} fps)"
                                               if source.get("width") else ""),
             f"- {source['frames']} frames measured after {source['warmup']} of warm-up, {source['repeat']} "
             f"round(s) of naive loop then pipeline; sinks: {', '.join(doc['sinks'])}; tracking "
             f"{'on' if doc['tracking'] else 'off'}",
             f"- machine: {doc['host']} ({doc['platform']}, {doc['cpus']} CPUs), edge {doc['edge_version']}, started "
             f"{doc['started']}; load average {load['before']} before, {load['after']} after (other processes "
             f"share the machine: compare ratios measured in one run, not absolute times)", ""]
    if doc["skipped"]:
        lines += [f"- not measured: {k} ({v})" for k, v in doc["skipped"].items()] + [""]
    lines += ["## Pipeline against the naive loop", "",
              "| backend | precision | pipeline / naive (median) | per round | pipeline layout | best sweep point |",
              "|---|---|---|---|---|---|"]
    for run in doc["runs"]:
        lines.append(f"| {run['backend']} | {run['precision']} | **{run['ratio']:.2f}×** | "
                     f"{', '.join(f'{r:.2f}' for r in run['ratios'])} | {_layout(run['pipeline'])} | {_best(run)} |")
    for run in doc["runs"]:
        lines += ["", f"## {run['backend']} {run['precision']}: latency per stage (ms)", "",
                  "| stage | p50 | p90 | p99 | mean | naive p50 |", "|---|---|---|---|---|---|"]
        naive = run["naive"]["latency_ms"]
        for stage, v in run["pipeline"]["latency_ms"].items():
            naive_p50 = f"{naive[stage]['p50']:.2f}" if stage in naive else "–"
            lines.append(f"| {stage} | {v['p50']:.2f} | {v['p90']:.2f} | {v['p99']:.2f} | {v['mean']:.2f} | "
                         f"{naive_p50} |")
        if run["sweep"]:
            lines += ["", "Sweep (fps, × naive):", "", "| workers | threads | fps | × naive | CPU ms / frame |",
                      "|---|---|---|---|---|"]
            lines += [f"| {p['workers']} | {p['threads']} | {p['fps']:.1f} | {p['ratio']:.2f} | {p['cpu_ms']:.1f} |"
                      for p in run["sweep"]]
        for chart in charts:
            if chart.stem.endswith(safe_name(run["name"])):
                lines += ["", f"![{chart.stem}]({chart.name})"]
    if note:
        lines += ["", f"_{note}_"]
    return "\n".join(lines) + "\n"


def write_report(doc: dict[str, Any], charted: list[Charted], out: str | Path) -> tuple[list[Path], str | None]:
    """The report folder: ``bench.json``, the charts (if matplotlib is there), ``report.md``. Returns the
    charts and, when there are none, why."""
    folder = make_out_dir(out)
    try:
        charts, note = draw_charts(doc, charted, folder), None
    except ImportError:
        charts, note = [], CHARTS_NEED
    report = {**doc, "charts": [c.name for c in charts], **({"note": note} if note else {})}
    write_atomic(folder / "bench.json", json.dumps(report, indent=2) + "\n")
    write_atomic(folder / "report.md", markdown(doc, charts, note))
    return charts, note
