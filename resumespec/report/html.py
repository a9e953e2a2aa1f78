"""Draw a Timeline as one self-contained HTML page (``render_html``).

Everything is inline: CSS, a little JavaScript, and the swimlane diagram as
SVG drawn here in Python; the page loads nothing from the network.

The page, top to bottom: the verdict (the property, what it means, the
short story of why it fails, a link to the step), a legend, the swimlane
diagram beside the numbered story (one row per step: the sender's lane, one
lane per receiving session, one lane per language rank's block pool with
every block drawn as a cell coloured by the request that holds it), then
every step in detail (what changed). The violating step (or the first
unexplained event) is the row with class ``highlight``; its ``data-step``
is the step index (docs/reports.md). The loop of a liveness counterexample
is drawn as a bracket in the left margin with an arrow back to where the
loop starts.

For tests and screenshots the script writes ``rendered`` (or the first
JavaScript error) into ``#render-status`` and ``data-render`` on <body>.
"""

from __future__ import annotations

import html
import json

from .timeline import Arrow, BlockCell, Timeline, story_lines

ROW_H = 54          # one step
HEAD_H = 56         # lane titles (+ block ids)
GUTTER = 44         # step numbers
LOOP_W = 34         # the loop bracket
LANE_W = 150        # sender and session lanes
CELL_GAP = 4

REQUEST_COLOURS = ["#bcd7ff", "#ffd59e", "#c7ecc0", "#e7c9f5", "#ffc9c9", "#d4d4d4"]
ARROW_COLOURS = {"ctl": "#1f5fbf", "status": "#2a8a3a", "write": "#d9822b", "alloc": "#888", "free": "#888"}


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _cell_width(t: Timeline) -> int:
    longest = 3
    for step in t.steps:
        for cells in step.pools.values():
            for c in cells:
                longest = max(longest, len(c.content), len(c.aux) + 2)
    return max(54, 7 * longest + 12)


class _Layout:
    def __init__(self, t: Timeline):
        self.t = t
        self.cell_w = _cell_width(t)
        self.x: dict[str, tuple[float, float]] = {}   # lane -> (left, right)
        x = GUTTER + LOOP_W
        for lane in t.lanes:
            if lane.kind == "pool":
                n = max((len(s.pools.get(lane.id, [])) for s in t.steps), default=0)
                w = max(LANE_W, n * (self.cell_w + CELL_GAP) + 16)
            else:
                w = LANE_W
            self.x[lane.id] = (x, x + w)
            x += w
        self.width = x + 12
        self.height = HEAD_H + ROW_H * len(t.steps) + (ROW_H if t.is_lasso else 8)

    def centre(self, lane: str) -> float:
        a, b = self.x.get(lane, (0, 0))
        return (a + b) / 2

    def y(self, step: int) -> float:
        return HEAD_H + step * ROW_H + ROW_H / 2

    def row_top(self, step: int) -> float:
        return HEAD_H + step * ROW_H


def _svg(t: Timeline, lay: _Layout) -> str:
    out: list[str] = []
    w, h = lay.width, lay.height
    out.append(f'<svg id="lanes" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
               f'viewBox="0 0 {w} {h}" role="img" aria-label="swimlane diagram">')
    out.append('<defs>')
    for kind, colour in list(ARROW_COLOURS.items()) + [("bad", "#c62828")]:
        out.append(f'<marker id="head-{kind}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
                   f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
                   f'fill="{colour}"/></marker>')
    out.append('</defs>')
    # Row backgrounds: loop, highlight, zebra.
    for step in t.steps:
        top = lay.row_top(step.index)
        cls = "row"
        if t.loop_to is not None and step.index >= t.loop_to:
            cls += " in-loop"
        if step.index == t.finding.step:
            cls += " highlight"
        elif step.index % 2:
            cls += " odd"
        out.append(f'<rect class="{cls}" data-step="{step.index}" x="0" y="{top}" width="{w}" height="{ROW_H}"/>')
        out.append(f'<text class="stepno" x="{GUTTER - 8}" y="{top + ROW_H / 2 + 4}" text-anchor="end">'
                   f'{step.index}</text>')
    # Lane titles and lines.
    for lane in t.lanes:
        a, b = lay.x[lane.id]
        out.append(f'<rect class="lanehead {lane.kind}" x="{a + 3}" y="4" width="{b - a - 6}" height="26" rx="5"/>')
        out.append(f'<text class="lanetitle" x="{(a + b) / 2}" y="21" text-anchor="middle">{esc(lane.title)}</text>')
        if lane.kind == "pool":
            cells = t.steps[0].pools.get(lane.id, []) if t.steps else []
            for j, c in enumerate(cells):
                cx = a + 8 + j * (lay.cell_w + CELL_GAP) + lay.cell_w / 2
                out.append(f'<text class="blockid" x="{cx}" y="{HEAD_H - 8}" text-anchor="middle">block {esc(c.block)}</text>')
            out.append(f'<line class="poolsep" x1="{a}" y1="{HEAD_H}" x2="{a}" y2="{h}"/>')
        else:
            out.append(f'<line class="lifeline" x1="{(a + b) / 2}" y1="32" x2="{(a + b) / 2}" y2="{h}"/>')
    # Pools.
    for step in t.steps:
        for lane_id, cells in step.pools.items():
            out.extend(_pool_row(lay, lane_id, step.index, cells))
    # Arrows (under the marks).
    for arrow in t.arrows:
        out.extend(_arrow(lay, arrow, len(t.steps)))
    # Marks.
    for step in t.steps:
        per_lane: dict[str, int] = {}
        for m in step.marks:
            if m.lane not in lay.x:
                continue
            k = per_lane.get(m.lane, 0)
            per_lane[m.lane] = k + 1
            if k > 1:
                continue
            a, b = lay.x[m.lane]
            y = lay.y(step.index) - 9 + (k * 18 if k else 0) - (9 if len([x for x in step.marks if x.lane == m.lane]) > 1 else 0)
            text = m.text if len(m.text) <= 22 else m.text[:21] + "\u2026"
            tw = min(b - a - 10, 7 * len(text) + 14)
            cx = (a + b) / 2
            if m.lane.startswith("pool"):
                cx, y = b - tw / 2 - 4, lay.row_top(step.index) + 2
            out.append(f'<g class="mark {m.tone}"><rect x="{cx - tw / 2}" y="{y}" width="{tw}" height="18" rx="4"/>'
                       f'<text x="{cx}" y="{y + 13}" text-anchor="middle">{esc(text)}</text></g>')
    out.extend(_loop(t, lay))
    out.append('</svg>')
    return "\n".join(out)


def _pool_row(lay: _Layout, lane_id: str, step: int, cells: list[BlockCell]) -> list[str]:
    a, _ = lay.x[lane_id]
    top = lay.row_top(step) + 10
    out = []
    for j, c in enumerate(cells):
        x = a + 8 + j * (lay.cell_w + CELL_GAP)
        if c.owners:
            fill = REQUEST_COLOURS[(int(c.owners[0]) - 1) % len(REQUEST_COLOURS)] if str(c.owners[0]).isdigit() \
                else REQUEST_COLOURS[-1]
        elif c.on_free_list:
            fill = "#ffffff"
        else:
            fill = "#eeeeee"
        cls = "cell"
        if c.anomaly:
            cls += " anomaly"
        if c.writing:
            cls += " writing"
        if c.changed:
            cls += " changed"
        title = (f"block {c.block}: " + (("held by request " + " and ".join(map(str, c.owners))) if c.owners else
                                          "free" if c.on_free_list else "neither free nor held (leaked)")
                 + (f"; {c.anomaly}" if c.anomaly else "") + f"; content {c.content or '?'}"
                 + (f"; aux {c.aux}" if c.aux else "") + ("; a write is in flight" if c.writing else ""))
        out.append(f'<g class="{cls}" data-block="{esc(c.block)}"><title>{esc(title)}</title>'
                   f'<rect x="{x}" y="{top}" width="{lay.cell_w}" height="{ROW_H - 20}" rx="3" fill="{fill}"/>')
        owner = c.owner_text() if (c.owners or c.on_free_list > 1 or not c.on_free_list) else ""
        if owner:
            out.append(f'<text class="owner" x="{x + 3}" y="{top + 9}">{esc(owner)}</text>')
        if c.aux:
            out.append(f'<text class="aux" x="{x + lay.cell_w - 3}" y="{top + 9}" text-anchor="end">aux {esc(c.aux)}</text>')
        content = "" if c.content in ("_", "_,_", "") and not c.owners else c.content
        out.append(f'<text class="content" x="{x + lay.cell_w / 2}" y="{top + 22}" text-anchor="middle">'
                   f'{esc(content)}</text></g>')
    return out


def _arrow(lay: _Layout, a: Arrow, n_steps: int) -> list[str]:
    if a.src not in lay.x or a.dst not in lay.x:
        return []
    x1, x2 = lay.centre(a.src), lay.centre(a.dst)
    block_top = None
    if a.dst.startswith("pool"):
        x2 = lay.x[a.dst][0] + 4
        blocks = [c.block for c in lay.t.steps[0].pools.get(a.dst, [])] if lay.t.steps else []
        if a.block is not None and a.block in blocks and a.kind == "write":
            j = blocks.index(a.block)
            x2 = lay.x[a.dst][0] + 8 + j * (lay.cell_w + CELL_GAP) + lay.cell_w / 2
            block_top = True
    if a.src.startswith("pool"):
        x1 = lay.x[a.src][0] + 4
    y1 = lay.y(a.start)
    end = a.end if a.end is not None else n_steps - 0.6
    y2 = lay.y(end) if a.end is not None else lay.row_top(n_steps) - 4
    if block_top and a.end is not None:
        y2 = lay.row_top(a.end) + 9         # the top edge of the block's cell
    kind = "bad" if a.bad else a.kind
    cls = f"arrow {a.kind} {a.fate}" + (" bad" if a.bad else "")
    if a.kind in ("alloc", "free"):
        if x1 == x2:
            return []
        y = y1 + (12 if a.kind == "free" else 16)
        return [f'<line class="{cls}" x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" marker-end="url(#head-{kind})"/>']
    out = [f'<g class="{cls}" data-from="{a.start}" data-to="{"" if a.end is None else a.end}">']
    out.append(f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" marker-end="url(#head-{kind})"/>')
    if a.fate == "dropped":
        out.append(f'<text class="drop" x="{x2}" y="{y2 + 5}" text-anchor="middle">\u2715</text>')
    # The label sits near the sending end so that labels of one step do not collide.
    frac = 0.5 if abs(y2 - y1) < ROW_H * 1.5 else min(0.5, (ROW_H * 0.7) / max(1.0, abs(y2 - y1)))
    lx, ly = x1 + (x2 - x1) * frac, y1 + (y2 - y1) * frac - 3
    label = a.label if a.fate != "pending" else a.label + " (in flight)"
    out.append(f'<text class="alabel" x="{lx}" y="{ly}" text-anchor="middle">{esc(label)}</text>')
    out.append('</g>')
    return out


def _loop(t: Timeline, lay: _Layout) -> list[str]:
    if not t.steps:
        return []
    last = t.steps[-1].index
    x = GUTTER + 10
    if t.loop_to is not None:
        y1, y2 = lay.y(t.loop_to), lay.y(last) + ROW_H / 2 + 10
        return [f'<g class="loop" data-loop-to="{t.loop_to}">'
                f'<path d="M{x + 16},{y2} L{x},{y2} L{x},{y1} L{x + 14},{y1}" marker-end="url(#head-bad)"/>'
                f'<text x="{x + 18}" y="{y2 + 14}">back to step {t.loop_to}: repeats forever</text></g>']
    if t.stuttering:
        y = lay.y(last) + ROW_H / 2 + 14
        return [f'<g class="loop stutter"><path d="M{x + 14},{y - 16} C{x - 8},{y - 16} {x - 8},{y + 6} {x + 10},{y + 6}" '
                f'marker-end="url(#head-bad)"/><text x="{x + 18}" y="{y + 10}">'
                f'nothing happens any more: stays in step {last}\u2019s state forever</text></g>']
    return []


CSS = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 18px 22px; color: #1d1d1d; }
h1 { font-size: 20px; margin: 0 0 2px; }
.subtitle { color: #555; margin: 0 0 12px; font-size: 13px; }
.verdict { border-left: 6px solid #c62828; background: #fdecea; padding: 10px 14px; margin: 0 0 12px; max-width: 1100px; }
.verdict.ok { border-color: #2a8a3a; background: #e8f5e9; }
.verdict .head { font-size: 17px; font-weight: 600; }
.verdict .meaning { color: #444; }
.verdict ul { margin: 6px 0 2px 18px; padding: 0; }
.verdict .hint { margin-top: 6px; color: #333; font-style: italic; }
.legend { font-size: 12px; color: #444; margin: 0 0 8px; display: flex; flex-wrap: wrap; gap: 4px 16px; align-items: center; }
.legend .sw { display: inline-block; width: 14px; height: 12px; border: 1px solid #777; vertical-align: -2px; margin-right: 4px; }
.legend .ln { display: inline-block; width: 22px; border-top: 2px solid; vertical-align: 3px; margin-right: 4px; }
.diagram { display: flex; align-items: flex-start; overflow-x: auto; }
#lanes { flex: none; }
#lanes text { font-size: 11px; }
#lanes .row { fill: #fff; }
#lanes .row.odd { fill: #f7f8fa; }
#lanes .row.in-loop { fill: #fff8e1; }
#lanes .row.highlight { fill: #ffd7d5; }
#lanes .row.selected { fill: #e3f0ff; }
#lanes .stepno { fill: #777; font-size: 12px; }
#lanes .lanehead { fill: #eef1f5; stroke: #c8ced8; }
#lanes .lanehead.sender { fill: #fdf0e2; }
#lanes .lanehead.pool { fill: #f1f1f1; }
#lanes .lanetitle { font-weight: 600; font-size: 12px; }
#lanes .blockid { fill: #666; font-size: 10px; }
#lanes .lifeline { stroke: #b5bcc7; stroke-dasharray: 2 3; }
#lanes .poolsep { stroke: #ddd; }
#lanes .cell rect { stroke: #9aa3ad; stroke-width: 1; }
#lanes .cell.changed rect { stroke: #333; stroke-width: 1.6; }
#lanes .cell.writing rect { stroke: #d9822b; stroke-width: 2; stroke-dasharray: 4 2; }
#lanes .cell.anomaly rect { stroke: #c62828; stroke-width: 2.6; }
#lanes .cell .owner { font-size: 9px; fill: #333; }
#lanes .cell .aux { font-size: 9px; fill: #6a4a00; }
#lanes .cell .content { font-size: 11px; font-weight: 600; }
#lanes .arrow line, #lanes .arrow path { stroke-width: 1.6; fill: none; }
#lanes .arrow.ctl line { stroke: #1f5fbf; }
#lanes .arrow.status line { stroke: #2a8a3a; }
#lanes .arrow.write line { stroke: #d9822b; stroke-dasharray: 5 3; }
#lanes line.arrow.alloc, #lanes line.arrow.free { stroke: #999; stroke-width: 1; }
#lanes .arrow.pending line { stroke-dasharray: 2 3; }
#lanes .arrow.bad line { stroke: #c62828; stroke-width: 2.2; }
#lanes .alabel { font-size: 10px; paint-order: stroke; stroke: #fff; stroke-width: 3px; fill: #222; }
#lanes .drop { fill: #c62828; font-size: 14px; font-weight: 700; }
#lanes .mark rect { fill: #fff; stroke: #667; }
#lanes .mark.bad rect { fill: #c62828; stroke: #8e0000; }
#lanes .mark.bad text { fill: #fff; font-weight: 600; }
#lanes .mark.good rect { fill: #e8f5e9; stroke: #2a8a3a; }
#lanes .loop path { stroke: #c62828; stroke-width: 2; fill: none; }
#lanes .loop text { fill: #c62828; font-size: 12px; font-weight: 600; }
.story { flex: 1 0 420px; max-width: 640px; padding-top: %(head)dpx; }
.story .step { height: %(row)dpx; box-sizing: border-box; padding: 3px 8px; font-size: 12.5px; line-height: 1.3;
  overflow: hidden; border-bottom: 1px solid #eee; cursor: pointer; display: flex; gap: 6px; }
.story .step .n { color: #777; min-width: 22px; text-align: right; }
.story .step .s { display: -webkit-box; -webkit-line-clamp: 3; -webkit-box-orient: vertical; overflow: hidden; }
.story .step.in-loop { background: #fff8e1; }
.story .step.highlight { background: #ffd7d5; font-weight: 600; }
.story .step.selected { background: #e3f0ff; }
.story .step.after { color: #999; }
.story .end { padding: 6px 8px; color: #c62828; font-weight: 600; font-size: 12.5px; }
details.all { margin-top: 18px; }
table.steps { border-collapse: collapse; font-size: 12px; }
table.steps td, table.steps th { border-top: 1px solid #e3e3e3; padding: 3px 8px; vertical-align: top; text-align: left; }
table.steps tr.highlight td { background: #ffd7d5; }
table.steps code { font-size: 11px; white-space: pre-wrap; word-break: break-all; }
#render-status { color: #999; font-size: 11px; margin-top: 14px; }
pre.text { background: #f6f6f6; padding: 8px; font-size: 12px; white-space: pre-wrap; }
"""

SCRIPT = """
(function () {
  var status = document.getElementById('render-status');
  window.addEventListener('error', function (e) {
    status.textContent = 'error: ' + e.message;
    document.body.setAttribute('data-render', 'error');
  });
  function select(step) {
    document.querySelectorAll('.selected').forEach(function (el) { el.classList.remove('selected'); });
    document.querySelectorAll('[data-step="' + step + '"]').forEach(function (el) {
      if (!el.classList.contains('highlight')) el.classList.add('selected');
    });
  }
  document.querySelectorAll('.story .step').forEach(function (el) {
    el.addEventListener('click', function () { select(el.getAttribute('data-step')); });
  });
  var report = JSON.parse(document.getElementById('report-data').textContent);
  var hl = document.querySelectorAll('.story .step.highlight');
  var ok = report.steps === document.querySelectorAll('.story .step').length &&
           (report.highlight === null ? hl.length === 0 :
            hl.length === 1 && hl[0].getAttribute('data-step') === String(report.highlight));
  status.textContent = ok ? 'rendered' : 'error: the page does not match its data';
  document.body.setAttribute('data-render', ok ? 'ok' : 'error');
})();
"""


def render_html(t: Timeline) -> str:
    lay = _Layout(t)
    f = t.finding
    bad = f.verdict not in ("conforms", "success")
    out = ['<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
           f'<title>{esc(t.title)}: {esc(f.headline())}</title>',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f'<style>{CSS % {"head": HEAD_H, "row": ROW_H}}</style></head><body data-render="pending">']
    out.append(f'<h1>{esc(t.title)}</h1>')
    if t.subtitle:
        out.append(f'<p class="subtitle">{esc(t.subtitle)}</p>')
    out.append(f'<section class="verdict{"" if bad else " ok"}" id="verdict">')
    out.append(f'<div class="head">{esc(f.headline())}</div>')
    if f.meaning:
        out.append(f'<div class="meaning">{esc(f.prop)}: {esc(f.meaning)}.</div>')
    if f.why:
        out.append('<ul class="why">' + "".join(f'<li>{esc(w)}</li>' for w in f.why) + '</ul>')
    if f.step is not None and bad:
        out.append(f'<div><a href="#step-{f.step}">Go to step {f.step}</a></div>')
    if f.hint:
        out.append(f'<div class="hint">In short: {esc(f.hint)}</div>')
    out.append('</section>')
    out.append(_legend(t))
    out.append('<div class="diagram">')
    out.append(_svg(t, lay))
    out.append('<div class="story" id="story">')
    for step in t.steps:
        cls = "step"
        if t.loop_to is not None and step.index >= t.loop_to:
            cls += " in-loop"
        if step.index == f.step:
            cls += " highlight"
        if step.tone == "after":
            cls += " after"
        line = f' data-line="{step.line}"' if step.line is not None else ""
        out.append(f'<div class="{cls}" id="step-{step.index}" data-step="{step.index}"{line} '
                   f'title="{esc(step.sentence)}"><span class="n">{step.index}</span>'
                   f'<span class="s">{esc(step.sentence)}</span></div>')
    if t.loop_to is not None:
        out.append(f'<div class="end">\u21ba back to step {t.loop_to}: steps {t.loop_to}\u2013{t.steps[-1].index} repeat forever.</div>')
    elif t.stuttering:
        out.append('<div class="end">\u25a0 nothing happens any more: the system stays in this state forever.</div>')
    out.append('</div></div>')
    out.append(_details(t))
    out.append('<details class="all"><summary>The story as text</summary><pre class="text">'
               + esc("\n".join(story_lines(t))) + '</pre></details>')
    data = {"kind": t.kind, "steps": len(t.steps), "highlight": f.step,
            "verdict": f.verdict, "property": f.prop, "loop_to": t.loop_to, "stuttering": t.stuttering}
    out.append('<script type="application/json" id="report-data">'
               + json.dumps(data).replace("</", "<\\/") + '</script>')
    out.append('<p id="render-status">the page script did not run</p>')
    out.append(f'<script>{SCRIPT}</script>')
    out.append('</body></html>')
    return "\n".join(out) + "\n"


def _legend(t: Timeline) -> str:
    reqs = sorted({r for s in t.steps for cells in s.pools.values() for c in cells for r in c.owners}, key=str)
    parts = []
    for r in reqs:
        colour = REQUEST_COLOURS[(int(r) - 1) % len(REQUEST_COLOURS)] if str(r).isdigit() else REQUEST_COLOURS[-1]
        parts.append(f'<span><span class="sw" style="background:{colour}"></span>block held by request {esc(r)}</span>')
    parts.append('<span><span class="sw" style="background:#fff"></span>free block</span>')
    parts.append('<span><span class="sw" style="background:#fff;border:2px dashed #d9822b"></span>write in flight</span>')
    parts.append('<span><span class="sw" style="background:#fff;border:2px solid #c62828"></span>block in a forbidden state</span>')
    parts.append('<span><span class="ln" style="border-color:#1f5fbf"></span>init / resume / abort</span>')
    parts.append('<span><span class="ln" style="border-color:#2a8a3a"></span>status</span>')
    parts.append('<span><span class="ln" style="border-color:#d9822b;border-top-style:dashed"></span>data write (RDMA)</span>')
    parts.append('<span>token <b>r.i</b> = position i of request r\u2019s embedding; '
                 '<b>aux n</b> = the block\u2019s aux row says n tokens in all</span>')
    return '<div class="legend">' + "".join(parts) + '</div>'


def _details(t: Timeline) -> str:
    rows = []
    for step in t.steps:
        cls = ' class="highlight"' if step.index == t.finding.step and t.finding.prop else ""
        changes = "\n".join(step.details[:40]) + ("\n..." if len(step.details) > 40 else "")
        rows.append(f'<tr{cls} id="d-{step.index}"><td>{step.index}</td><td>{esc(step.action)}</td>'
                    f'<td>{esc(step.where)}</td><td><code>{esc(changes)}</code></td></tr>')
    return ('<details class="all"><summary>Every step in detail (action, source, what changed)</summary>'
            '<table class="steps"><tr><th>step</th><th>action</th><th>where</th><th>changes</th></tr>'
            + "".join(rows) + '</table></details>')
