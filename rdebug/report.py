"""`rdebug report`: a recording's timeline as ONE self-contained HTML page.

No network, no external asset: inline SVG and a little JavaScript.  Along icount: one
lane of marks per interrupt vector (and per exception vector), one for the recorded
inputs, one for the named snapshots and the recording's checkpoints; under each lane the
rate of its events over time (events per bin); and, when asked, the history of a
variable as a step plot.  The mouse wheel zooms every lane together around the pointer,
dragging pans, a double-click resets.  Built from the Session's queries only.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from dataclasses import dataclass

from rdebug.api import Session
from rdebug.errors import RdebugError

#: Bins of the rate plots.
BINS = 120
#: Lane and plot heights (SVG user units = pixels).
LANE_HEIGHT = 18
RATE_HEIGHT = 26
HISTORY_HEIGHT = 90


class ReportInterrupted(RdebugError):
    """`Session.interrupt()` (Ctrl-C) stopped a query the page needs: no page."""


@dataclass(frozen=True, slots=True)
class Lane:
    label: str
    css: str  # the marks' class after "mark"
    icounts: list[int]
    titles: list[str]


def _marks(lane: Lane, end: int) -> str:
    lines = [
        f'<line class="mark {lane.css}" x1="{i}" x2="{i}" y1="1" y2="{LANE_HEIGHT - 1}">'
        f"<title>{html.escape(title)}</title></line>"
        for i, title in zip(lane.icounts, lane.titles, strict=True)
    ]
    return _svg(LANE_HEIGHT, end, "lane", "".join(lines))


def _rate(lane: Lane, end: int) -> str:
    width = max(1, end) / BINS
    counts = [0] * BINS
    for i in lane.icounts:
        counts[min(BINS - 1, int(i / width))] += 1
    top = max(counts) or 1
    path = [f"M0 {RATE_HEIGHT}"]
    for n, count in enumerate(counts):
        y = RATE_HEIGHT - (RATE_HEIGHT - 2) * count / top
        path.append(f"V{y:.1f} H{(n + 1) * width:.0f}")
    path.append(f"V{RATE_HEIGHT} Z")
    title = f"{lane.label}: at most {top} per {width:,.0f} instructions"
    body = f'<path class="rate" d="{" ".join(path)}"><title>{html.escape(title)}</title></path>'
    return _svg(RATE_HEIGHT, end, "rate-plot", body)


def _svg(height: int, end: int, css: str, body: str) -> str:
    return (
        f'<svg class="timeline {css}" viewBox="0 0 {max(1, end)} {height}" '
        f'preserveAspectRatio="none" height="{height}">{body}</svg>'
    )


def _row(label: str, svg: str, count: str = "") -> str:
    return (
        f'<div class="row"><div class="label">{html.escape(label)}'
        f'<span class="count">{html.escape(count)}</span></div>{svg}</div>'
    )


def _history_plot(name: str, initial: int, changes: list[tuple[int, int]], end: int) -> str:
    values = [initial, *(value for _, value in changes)]
    low, high = min(values), max(values)
    span = (high - low) or 1

    def y(value: int) -> float:
        return HISTORY_HEIGHT - 2 - (HISTORY_HEIGHT - 4) * (value - low) / span

    path = [f"M0 {y(initial):.1f}"]
    for icount, value in changes:
        path.append(f"H{icount} V{y(value):.1f}")
    path.append(f"H{max(1, end)}")
    body = (
        f'<path class="history" data-changes="{len(changes)}" d="{" ".join(path)}">'
        f"<title>{html.escape(name)}: {low} to {high}</title></path>"
    )
    return _row(
        f"{name} ({low}..{high})",
        _svg(HISTORY_HEIGHT, end, "history-plot", body),
        f"{len(changes)} changes",
    )


def lanes(session: Session) -> list[Lane]:
    """The lanes of the page: interrupts and exceptions per vector, inputs, snapshots and
    checkpoints (one replay of the recording for the interrupts)."""
    by_vector: dict[tuple[str, int], Lane] = {}
    deliveries = session.interrupts(exceptions=True)
    for row in deliveries:
        kind = "IRQ" if row.source == "external" else "exception"
        key = (kind, row.vector)
        if key not in by_vector:
            css = "irq" if kind == "IRQ" else "exception"
            by_vector[key] = Lane(f"{kind} vector {row.vector:#x}", css, [], [])
        lane = by_vector[key]
        lane.icounts.append(row.icount)
        where = f" <{row.where}>" if row.where else ""
        lane.titles.append(f"icount {row.icount}: vector {row.vector:#x} at {row.pc:#x}{where}")
    if deliveries.interrupted:
        raise ReportInterrupted(f"interrupted at icount {deliveries.position}")
    result = [by_vector[key] for key in sorted(by_vector)]
    inputs = list(session.inputs())
    result.append(
        Lane(
            "inputs",
            "input",
            [e.icount for e in inputs],
            [f"icount {e.icount}: {e.detail}" for e in inputs],
        )
    )
    marks: list[tuple[int, str]] = [
        (e.icount, f"icount {e.icount}: checkpoint ({e.detail})")
        for e in session.events("checkpoint")
    ]
    marks += [
        (snap.icount, f"icount {snap.icount}: snapshot {snap.name}")
        for snap in session.snapshots()
        if snap.icount is not None
    ]
    marks.sort()
    result.append(
        Lane("snapshots and checkpoints", "snapshot", [i for i, _ in marks], [t for _, t in marks])
    )
    return result


def build(session: Session, histories: Iterable[tuple[str, int]] = ()) -> str:
    """The page for `session`'s recording, with the history of each (symbol, length)."""
    end = session.end_icount
    rows: list[str] = []
    total = 0
    for lane in lanes(session):
        total += len(lane.icounts)
        rows.append(_row(lane.label, _marks(lane, end), f"{len(lane.icounts)}"))
        rows.append(_row("  rate", _rate(lane, end)))
    for name, length in histories:
        query = session.history(name, length)
        changes = [(change.icount, change.value) for change in query]
        if query.interrupted:
            raise ReportInterrupted(f"interrupted at icount {query.position}")
        initial = query.initial if query.initial is not None else 0
        rows.append(_history_plot(name, initial, changes, end))
    guest = session.trace.info.guest.name
    title = f"rdebug report: {guest}"
    summary = (
        f"{end:,} instructions recorded; {total} marks. "
        "Wheel: zoom; drag: pan; double-click: the whole recording."
    )
    return _PAGE.format(
        title=html.escape(title),
        summary=html.escape(summary),
        rows="\n".join(rows),
        end=json.dumps(end),
        marks=total,
    )


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 13px sans-serif; margin: 16px; color: #222; }}
h1 {{ font-size: 18px; margin: 0 0 4px; }}
.row {{ display: flex; align-items: center; margin: 1px 0; }}
.label {{ width: 230px; flex: none; white-space: pre; overflow: hidden; }}
.count {{ color: #888; margin-left: 6px; }}
svg.timeline {{ flex: 1; background: #f6f6f6; display: block; cursor: crosshair; }}
.mark {{ stroke-width: 1.5; vector-effect: non-scaling-stroke; }}
.mark.irq {{ stroke: #1f6fd1; }} .mark.exception {{ stroke: #d1421f; }}
.mark.input {{ stroke: #2a9d3a; }} .mark.snapshot {{ stroke: #8a3ad1; stroke-width: 2.5; }}
.rate {{ fill: #c9d9ef; stroke: #6b8fc4; vector-effect: non-scaling-stroke; }}
.history {{ fill: none; stroke: #c46b1f; stroke-width: 1.5; vector-effect: non-scaling-stroke; }}
#axis {{ margin-left: 230px; display: flex; justify-content: space-between; color: #555; }}
</style></head>
<body data-marks="{marks}">
<h1>{title}</h1>
<p id="summary">{summary}</p>
<div id="axis"><span id="lo">0</span><span id="mid"></span><span id="hi"></span></div>
{rows}
<script>
"use strict";
(function () {{
  const END = {end};
  let lo = 0, hi = Math.max(1, END);
  const svgs = Array.from(document.querySelectorAll("svg.timeline"));
  function draw() {{
    for (const svg of svgs) {{
      const h = svg.viewBox.baseVal.height;
      svg.setAttribute("viewBox", lo + " 0 " + (hi - lo) + " " + h);
    }}
    const fmt = (v) => Math.round(v).toLocaleString("en");
    document.getElementById("lo").textContent = fmt(lo);
    document.getElementById("mid").textContent = fmt((lo + hi) / 2);
    document.getElementById("hi").textContent = fmt(hi);
  }}
  function at(svg, clientX) {{
    const box = svg.getBoundingClientRect();
    return lo + (hi - lo) * (clientX - box.left) / Math.max(1, box.width);
  }}
  let drag = null;
  for (const svg of svgs) {{
    svg.addEventListener("wheel", (event) => {{
      event.preventDefault();
      const x = at(svg, event.clientX);
      const k = event.deltaY < 0 ? 0.8 : 1.25;
      lo = Math.max(0, x - (x - lo) * k);
      hi = Math.min(Math.max(1, END), x + (hi - x) * k);
      if (hi - lo < 10) {{ hi = lo + 10; }}
      draw();
    }}, {{ passive: false }});
    svg.addEventListener("mousedown", (event) => {{ drag = {{ svg, x: event.clientX, lo, hi }}; }});
    svg.addEventListener("dblclick", () => {{ lo = 0; hi = Math.max(1, END); draw(); }});
  }}
  window.addEventListener("mousemove", (event) => {{
    if (!drag) return;
    const box = drag.svg.getBoundingClientRect();
    const shift = (drag.hi - drag.lo) * (event.clientX - drag.x) / Math.max(1, box.width);
    const width = drag.hi - drag.lo;
    lo = Math.min(Math.max(0, drag.lo - shift), Math.max(1, END) - width);
    hi = lo + width;
    draw();
  }});
  window.addEventListener("mouseup", () => {{ drag = null; }});
  draw();
  const drawn = document.querySelectorAll(".mark").length;
  document.body.dataset.drawn = String(drawn);
  console.log("rdebug report ready: " + drawn + " marks");
}})();
</script>
</body></html>
"""
