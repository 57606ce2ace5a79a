"""The daemon's live page: one tile per stream with its MJPEG preview, state, numbers, the bundles and backend
it runs, an fps/latency chart of the last minutes and its latest detections; a link to ``/metrics``. A click
on a tile enlarges it (Esc or another click shrinks it; ``#STREAM`` in the address opens it enlarged).

Everything is inline (HTML, CSS, a canvas chart in a few lines of JavaScript): the device may be offline,
so nothing is fetched from a CDN. The numbers come from ``/status.json`` once a second (the document
:mod:`edge.live` makes); the page only draws them.
"""

from __future__ import annotations

import html
import json
from urllib.parse import quote

STYLE = """
body{font-family:system-ui,sans-serif;background:#111;color:#ddd;margin:0 1em 1em}
header{display:flex;gap:1.5em;align-items:baseline;flex-wrap:wrap}h1{margin:.4em 0;font-size:1.4em}
header a{color:#8cf}#tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:1em}
.tile{background:#1c1c1c;border:1px solid #333;border-radius:6px;padding:.6em;cursor:zoom-in}
.tile.big{position:fixed;inset:2vh 2vw;z-index:10;overflow:auto;cursor:zoom-out;box-shadow:0 0 0 100vmax #000c}
.tile img{width:100%;display:block;background:#000;min-height:120px}
.tile h2{font-size:1.05em;margin:.2em 0 .4em;display:flex;justify-content:space-between}
.state{font-size:.8em;padding:0 .5em;border-radius:3px;background:#444}.state.streaming{background:#1a6b2c}
.state.reconnecting,.state.starting{background:#8a6d0b}.state.failed{background:#8b1d1d}
.numbers{font-variant-numeric:tabular-nums;margin:.4em 0;font-size:.9em}.bundles{font-size:.8em;color:#aaa}
canvas.chart{width:100%;height:90px;display:block;margin:.3em 0}
.tile.big canvas.chart{height:180px}.legend{font-size:.75em;color:#aaa}.fps{color:#4fc3f7}.ms{color:#ffb74d}
ul.latest{list-style:none;padding:0;margin:.3em 0;font-size:.85em;columns:2}
"""

SCRIPT = """
const query = TOKEN ? "?token=" + encodeURIComponent(TOKEN) : "";
const fmt = (v, d) => (v === null || v === undefined) ? "–" : Number(v).toFixed(d);
function enlarge(tile, on) {
  for (const other of document.querySelectorAll(".tile.big")) if (other !== tile) other.classList.remove("big");
  tile.classList.toggle("big", on);
}
for (const tile of document.querySelectorAll(".tile"))
  tile.addEventListener("click", () => enlarge(tile, !tile.classList.contains("big")));
document.addEventListener("keydown", e => {
  if (e.key === "Escape") for (const t of document.querySelectorAll(".tile.big")) enlarge(t, false);
});
if (location.hash) {
  const t = document.getElementById("tile-" + decodeURIComponent(location.hash.slice(1)));
  if (t) enlarge(t, true);
}

function draw(canvas, fps, latency) {
  const ratio = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * ratio; canvas.height = h * ratio;
  const g = canvas.getContext("2d"); g.scale(ratio, ratio);
  g.fillStyle = "#151515"; g.fillRect(0, 0, w, h);
  g.strokeStyle = "#333"; g.lineWidth = 1;
  for (let i = 1; i < 4; i++) { g.beginPath(); g.moveTo(0, h * i / 4); g.lineTo(w, h * i / 4); g.stroke(); }
  const line = (values, colour) => {
    const known = values.filter(v => v !== null);
    if (!known.length) return 0;
    const top = Math.max(...known) * 1.15 || 1;
    g.strokeStyle = colour; g.lineWidth = 1.5; g.beginPath();
    let moved = false;
    values.forEach((v, i) => {
      if (v === null) { moved = false; return; }
      const x = values.length > 1 ? i * w / (values.length - 1) : w, y = h - v / top * (h - 4) - 2;
      if (moved) g.lineTo(x, y); else { g.moveTo(x, y); moved = true; }
    });
    g.stroke();
    return top / 1.15;
  };
  const fpsTop = line(fps, "#4fc3f7"), msTop = line(latency, "#ffb74d");
  g.font = "11px sans-serif"; g.fillStyle = "#4fc3f7"; g.fillText(`max ${fmt(fpsTop, 1)} fps`, 4, 12);
  g.fillStyle = "#ffb74d"; g.textAlign = "right"; g.fillText(`max ${fmt(msTop, 0)} ms`, w - 4, 12);
  canvas.dataset.points = String(fps.length);
}

function latest(list, doc) {
  list.replaceChildren();
  if (!doc) return;
  for (const [bundle, items] of Object.entries(doc.results)) for (const d of items) {
    const li = document.createElement("li");
    const what = d.fraction !== undefined ? `${(d.fraction * 100).toFixed(1)} %` : fmt(d.score, 2);
    const several = Object.keys(doc.results).length > 1;
    li.textContent = `${d.label}${d.track !== undefined ? " #" + d.track : ""} ${what}${several ? ` (${bundle})` : ""}`;
    list.appendChild(li);
  }
}

async function refresh() {
  let doc;
  try { doc = await (await fetch("/status.json" + query)).json(); } catch (e) { return; }
  document.getElementById("daemon").textContent =
    `${doc.host} · edge ${doc.version} · ${doc.backend} (${doc.precision}) · up ${Math.round(doc.uptime_s)} s`;
  const minutes = (doc.history_times.length * doc.sample_s / 60).toFixed(1);
  for (const [name, s] of Object.entries(doc.streams)) {
    const tile = document.getElementById("tile-" + name);
    if (!tile) continue;
    const state = tile.querySelector(".state");
    state.textContent = s.state; state.className = "state " + s.state;
    const size = s.size ? `${s.size[0]}×${s.size[1]} · ` : "";
    tile.querySelector(".numbers").textContent = `${size}${fmt(s.fps, 1)} fps · latency ${fmt(s.latency_ms, 0)} ms` +
      ` · frames ${s.frames} · dropped ${s.dropped} · reconnects ${s.reconnects} · queue ${s.queue}`;
    tile.querySelector(".bundles").textContent =
      doc.bundles.map(b => `${b.name} (${b.task}, ${b.backend} ${b.precision})`).join(", ");
    tile.querySelector(".legend").innerHTML =
      `<span class="fps">fps</span> and <span class="ms">latency</span>, last ${minutes} min`;
    draw(tile.querySelector("canvas.chart"), s.history.fps, s.history.latency_ms);
    latest(tile.querySelector("ul.latest"), s.latest);
  }
}
setInterval(refresh, 1000); refresh();
"""


def page(streams: list[str], token: str | None) -> bytes:
    """The live page for ``streams``; ``token`` is passed on to the preview and status requests."""
    suffix = f"&token={quote(token)}" if token else ""
    tiles = "\n".join(
        f'<section class="tile" id="tile-{html.escape(s)}"><h2><span>{html.escape(s)}</span>'
        f'<span class="state">…</span></h2>'
        f'<img src="/stream.mjpg?stream={quote(s)}{suffix}" alt="{html.escape(s)}">'
        f'<div class="numbers"></div><div class="bundles"></div><canvas class="chart"></canvas>'
        f'<div class="legend"></div><ul class="latest"></ul></section>' for s in streams)
    metrics = "/metrics" + (f"?token={quote(token)}" if token else "")
    token_js = json.dumps(token or "").replace("</", "<\\/")  # no "</script>" inside the script
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>edge live</title><style>{STYLE}</style></head>
<body><header><h1>edge</h1><span id="daemon"></span><a href="{html.escape(metrics)}">metrics</a></header>
<main id="tiles">
{tiles}
</main>
<script>const TOKEN = {token_js};
{SCRIPT}</script></body></html>""".encode()
