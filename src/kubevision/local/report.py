"""report.html: one self-contained page with the job summary, the plots and the leaderboard.

Why one file with the PNGs inlined as base64: the report gets mailed, attached to tickets and
opened from archived output folders; a page that references files next to it breaks as soon as
it travels alone. Four plots at 100 dpi make a page of a few hundred kilobytes.

The page is built from plain data (`ReportData`), so it can be redrawn from an output folder; every
text that comes from the user (names, parameters, errors) is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubevision.local.leaderboard import Row, format_duration, format_params

__all__ = ["ReportData", "render_report"]


@dataclass(frozen=True)
class ReportData:
    job: str
    task: str
    metric: str
    mode: str
    """e.g. "random sweep", "AutoMode", "single trial"."""
    planned: int
    concurrency: int
    wall_s: float
    phase: str
    rows: Sequence[Row]
    histories: Mapping[int, Sequence[tuple[int, float]]]
    best_summary: Mapping[str, Any] | None = None
    best_model: str | None = None
    details: Sequence[tuple[str, str]] = field(default_factory=tuple)
    """Extra (label, value) lines for the summary table (early termination, devices, output folder)."""


_STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #222; padding: 0 1rem; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
table { border-collapse: collapse; font-size: .9rem; }
td, th { border: 1px solid #ddd; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } .num { text-align: right; font-variant-numeric: tabular-nums; }
.summary th { width: 14rem; } img { max-width: 100%; border: 1px solid #eee; margin: .5rem 0; }
.failed { color: #c0392b; } pre { background: #f8f8f8; padding: .5rem; overflow-x: auto; font-size: .8rem; }
code { font-size: .85rem; }
"""


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _summary_table(data: ReportData) -> str:
    best = next((r.outcome for r in data.rows if r.rank == 1), None)
    counts: dict[str, int] = {}
    for row in data.rows:
        counts[row.outcome.state] = counts.get(row.outcome.state, 0) + 1
    lines = [
        ("job", data.job),
        ("task", data.task),
        ("mode", data.mode),
        ("state", data.phase),
        ("trials", f"{len(data.rows)} of {data.planned} "
                   f"({', '.join(f'{n} {s}' for s, n in sorted(counts.items())) or 'none'}); "
                   f"{data.concurrency} at a time"),
        ("wall time", format_duration(data.wall_s)),
        (f"best {data.metric}", f"{best.value:.4f} (trial {best.number})" if best and best.value is not None
         else "no trial produced a model"),
    ]
    if best is not None:
        lines.append(("best parameters", format_params(best.params)))
    if data.best_model:
        lines.append(("best model", data.best_model))
    lines += list(data.details)
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in lines)
    return f'<table class="summary">{body}</table>'


def _leaderboard(data: ReportData) -> str:
    head = ("<tr><th>rank</th><th>trial</th>"
            f"<th>{html.escape(data.metric)}</th><th>status</th><th>epochs</th><th>duration</th>"
            "<th>parameters</th><th>note</th></tr>")
    rows = []
    for row in data.rows:
        o = row.outcome
        value = "" if o.value is None else f"{o.value:.4f}"
        epochs = "" if o.epochs_run is None else (f"{o.epochs_run}/{o.epochs_planned}" if o.epochs_planned
                                                   else str(o.epochs_run))
        note = o.error if o.state == "failed" else (o.stop_reason or "")
        css = ' class="failed"' if o.state == "failed" else ""
        rows.append(
            f"<tr{css}><td class=num>{row.rank or '-'}</td><td class=num>{o.number}</td><td class=num>{value}</td>"
            f"<td>{html.escape(o.state)}</td><td class=num>{epochs}</td>"
            f"<td class=num>{format_duration(o.duration_s)}</td><td><code>{html.escape(format_params(o.params))}"
            f"</code></td><td>{html.escape((note or '').splitlines()[0] if note else '')}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _failures(data: ReportData) -> str:
    failed = [r.outcome for r in data.rows if r.outcome.state == "failed"]
    if not failed:
        return ""
    parts = ["<h2>Failed trials</h2>"]
    for o in failed:
        parts.append(f"<h3>trial {o.number}</h3><p class=failed>{html.escape(o.error or '')}</p>")
        if o.log_tail:
            parts.append(f"<pre>{html.escape(chr(10).join(o.log_tail))}</pre>")
    return "".join(parts)


def render_report(data: ReportData) -> str:
    """The whole page as HTML text."""
    from kubevision.local import plots  # matplotlib only when a report is drawn

    outcomes = [r.outcome for r in data.rows]
    sections = [
        f"<h1>kubevision run: {html.escape(data.job)}</h1>",
        _summary_table(data),
        "<h2>Trials</h2>",
        _img(plots.best_vs_trial(outcomes, data.metric), f"{data.metric} per trial"),
        _img(plots.learning_curves(data.histories, outcomes, data.metric), "learning curves"),
    ]
    summary = data.best_summary or {}
    classes = [str(c) for c in summary.get("classes") or []]
    if summary.get("confusion_matrix") and classes:
        sections += ["<h2>Best model</h2>",
                     _img(plots.confusion_matrix(summary["confusion_matrix"], classes), "confusion matrix")]
        if summary.get("classification_report"):
            sections.append(_img(plots.precision_recall(summary["classification_report"], classes),
                                 "per-class precision and recall"))
    sections += ["<h2>Leaderboard</h2>", _leaderboard(data), _failures(data)]
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>kubevision run {html.escape(data.job)}</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(sections) + "\n</body></html>\n"
    )
