"""The viewer's single page: HTML, its script and its style (no other file is served).

The page asks the JSON API for a file's tree one group at a time, embeds the
Bokeh plots the API returns (``Bokeh.embed.embed_item``) and calls
``window.hdmeaOpenUnit(uid)`` when a centre of the mosaic is tapped.  Elements
tests look for: ``#tree`` (``.node`` items with ``data-path``), ``#plot-title``,
``#plot`` (``data-state="ready"`` once drawn), ``#mosaic``, ``#unit``
(``data-uid``) and ``#features``.
"""

from __future__ import annotations

__all__ = ["html", "script", "style"]

_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>hdmea view</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="app.css">
<script src="bokeh/bokeh.min.js"></script>
<script src="bokeh/bokeh-widgets.min.js"></script>
<script src="app.js" defer></script>
</head><body>
<header>
  <strong>hdmea view</strong>
  <label>file <select id="file"></select></label>
  <label title="draw plots as SVG: the save tool then writes SVG instead of PNG"><input type="checkbox" id="svg"> SVG export</label>
  <span id="status" role="status"></span>
</header>
<main>
  <aside id="side">
    <div id="tree" aria-label="file tree"></div>
    <h3>attributes <span id="attrs-of"></span></h3>
    <table id="attrs"></table>
  </aside>
  <section id="content">
    <nav><button id="tab-data" class="tab active">Dataset</button><button id="tab-rec" class="tab">Recording</button></nav>
    <div id="pane-data">
      <h2 id="plot-title">click a dataset in the tree</h2>
      <div id="plot-info"></div>
      <pre id="plot-text"></pre>
      <div id="plot"></div>
    </div>
    <div id="pane-rec" hidden>
      <form id="filters">
        <label>polarity <select name="polarity"><option value="all">all</option><option value="on">ON</option><option value="off">OFF</option></select></label>
        <label>rate from <input name="min_rate" type="number" step="any" min="0" size="5"> to <input name="max_rate" type="number" step="any" min="0" size="5"> Hz</label>
        <label>SNR at least <input name="min_snr" type="number" step="any" size="5"></label>
        <button type="submit" id="apply">apply</button>
        <label>open unit <select id="unit-select"><option value="">choose</option></select></label>
      </form>
      <div id="rec-summary"></div>
      <div id="mosaic"></div>
      <div id="unit"><h2 id="unit-title"></h2><div id="unit-figs"></div>
        <h3 id="features-title" hidden>features</h3><table id="features"></table></div>
    </div>
  </section>
</main>
</body></html>
"""

_SCRIPT = r"""
"use strict";
const state = {file: null, infos: {}, plotRequest: 0, unitRequest: 0};
const $ = (id) => document.getElementById(id);

function status(text, error) {
  const el = $("status");
  el.textContent = text || "";
  el.className = error ? "error" : "";
}

async function api(path, params) {
  const query = new URLSearchParams(params).toString();
  const response = await fetch("api/" + path + (query ? "?" + query : ""));
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || ("HTTP " + response.status));
  return body;
}

function backend() { return $("svg").checked ? "svg" : "canvas"; }

function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }

function dropDocuments(prefix) {
  // forget Bokeh documents embedded earlier in this area (their views are removed with the elements)
  if (!window.Bokeh || !Bokeh.documents) return;
  for (let i = Bokeh.documents.length - 1; i >= 0; i--) {
    const doc = Bokeh.documents[i];
    if (doc.__hdmea_area === prefix) Bokeh.documents.splice(i, 1);
  }
}

async function embed(item, target, area) {
  const before = Bokeh.documents.length;
  await Bokeh.embed.embed_item(item, target);
  for (let i = before; i < Bokeh.documents.length; i++) Bokeh.documents[i].__hdmea_area = area;
}

function formatShape(info) {
  if (info.type === "group") return info.members + " member" + (info.members === 1 ? "" : "s") + ", " + info.stored_text;
  const shape = info.shape.length ? info.shape.join(" x ") : "scalar";
  return info.dtype + " [" + shape + "], " + info.declared_text + (info.stored !== info.declared ? " (" + info.stored_text + " stored)" : "");
}

function showAttrs(info) {
  $("attrs-of").textContent = info.path;
  const table = $("attrs");
  clear(table);
  const rows = [];
  if (info.type === "dataset") {
    rows.push(["(dtype)", info.dtype], ["(shape)", JSON.stringify(info.shape)], ["(stored)", info.stored_text],
              ["(chunks)", info.chunks ? JSON.stringify(info.chunks) : "contiguous"], ["(compression)", info.compression || "none"]);
  }
  for (const [k, v] of Object.entries(info.attrs)) rows.push([k, v]);
  for (const [k, v] of rows) {
    const tr = table.insertRow();
    tr.insertCell().textContent = k;
    tr.insertCell().textContent = v;
  }
}

function nodeElement(info) {
  const li = document.createElement("li");
  li.className = "node " + info.type;
  li.dataset.path = info.path;
  li.dataset.kind = info.kind || info.type;
  const label = document.createElement("span");
  label.className = "label";
  const toggle = document.createElement("span");
  toggle.className = "toggle";
  toggle.textContent = info.type === "group" ? "\u25b8" : "\u2022";
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = info.name;
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = formatShape(info);
  label.append(toggle, name, meta);
  li.append(label);
  state.infos[info.path] = info;
  label.addEventListener("click", (event) => {
    event.stopPropagation();
    document.querySelectorAll(".node .label.selected").forEach((el) => el.classList.remove("selected"));
    label.classList.add("selected");
    showAttrs(info);
    if (info.type === "group") {
      toggleGroup(li, info);
      if (info.raster) showDataset(info.path + "/spike_times");
    } else {
      showDataset(info.path);
    }
  });
  return li;
}

async function toggleGroup(li, info) {
  const open = li.classList.toggle("open");
  li.querySelector(".toggle").textContent = open ? "\u25be" : "\u25b8";
  let list = li.querySelector(":scope > ul");
  if (!open) { if (list) list.hidden = true; return; }
  if (list) { list.hidden = false; return; }
  list = document.createElement("ul");
  li.append(list);
  try {
    const group = await api("tree", {file: state.file, node: info.path});
    for (const child of group.children) list.append(nodeElement(child));
    if (group.more) { const more = document.createElement("li"); more.className = "more"; more.textContent = group.more + " more"; list.append(more); }
    li.dataset.loaded = "1";
  } catch (error) { status(error.message, true); }
}

async function loadTree() {
  const tree = $("tree");
  clear(tree);
  state.infos = {};
  const root = await api("tree", {file: state.file, node: "/"});
  root.name = state.file.split("/").slice(1).join("/");
  const ul = document.createElement("ul");
  const li = nodeElement(root);
  li.classList.add("open");
  li.querySelector(".toggle").textContent = "\u25be";
  const children = document.createElement("ul");
  for (const child of root.children) children.append(nodeElement(child));
  li.append(children);
  li.dataset.loaded = "1";
  ul.append(li);
  tree.append(ul);
  showAttrs(root);
}

function showPane(name) {
  $("pane-data").hidden = name !== "data";
  $("pane-rec").hidden = name !== "rec";
  $("tab-data").classList.toggle("active", name === "data");
  $("tab-rec").classList.toggle("active", name === "rec");
}

async function showDataset(path) {
  showPane("data");
  const request = ++state.plotRequest;
  const plot = $("plot");
  plot.dataset.state = "loading";
  plot.dataset.node = path;
  status("reading " + path + " ...");
  const started = performance.now();
  try {
    const body = await api("plot", {file: state.file, node: path, backend: backend()});
    if (request !== state.plotRequest) return;
    dropDocuments("plot");
    clear(plot);
    $("plot-title").textContent = body.title;
    $("plot-text").textContent = body.text || "";
    $("plot-info").textContent = body.dtype + " [" + (body.shape.length ? body.shape.join(" x ") : "scalar") + "], drawn as " + body.kind;
    if (body.item) await embed(body.item, "plot", "plot");
    plot.dataset.state = "ready";
    plot.dataset.title = body.title;
    plot.dataset.ms = String(Math.round(performance.now() - started));
    status("");
  } catch (error) {
    plot.dataset.state = "error";
    $("plot-title").textContent = path;
    status(error.message, true);
  }
}

async function showRecording() {
  showPane("rec");
  const form = new FormData($("filters"));
  const params = {file: state.file, backend: backend()};
  for (const [k, v] of form.entries()) params[k] = v;
  const mosaic = $("mosaic");
  mosaic.dataset.state = "loading";
  status("reading the recording ...");
  try {
    const body = await api("recording", params);
    dropDocuments("mosaic");
    clear(mosaic);
    $("rec-summary").textContent = body.dataset_id + ": " + body.n_units + " units, " +
      (body.duration_s ? body.duration_s.toFixed(1) + " s, " : "") + "steps completed: " + (body.steps.join(", ") || "none") +
      (body.frame_order ? ". Raw frames: " + body.frame_order : "") +
      (body.warnings && body.warnings.length ? ". Warning: " + body.warnings.join(" Warning: ") : "") +
      (body.item ? ". Click a unit's centre to open its page." : "");
    if (body.item) await embed(body.item, "mosaic", "mosaic");
    else mosaic.textContent = body.title;
    const select = $("unit-select");
    while (select.options.length > 1) select.remove(1);
    for (const uid of body.units) { const o = document.createElement("option"); o.value = uid; o.textContent = uid; select.append(o); }
    mosaic.dataset.state = "ready";
    mosaic.dataset.title = body.title;
    mosaic.dataset.shown = (body.shown || []).join(" ");
    status("");
  } catch (error) { mosaic.dataset.state = "error"; status(error.message, true); }
}

async function openUnit(uid) {
  showPane("rec");
  const request = ++state.unitRequest;
  const unit = $("unit");
  unit.dataset.state = "loading";
  status("reading " + uid + " ...");
  try {
    const body = await api("unit", {file: state.file, unit: uid, backend: backend()});
    if (request !== state.unitRequest) return;
    dropDocuments("unit");
    const figs = $("unit-figs");
    clear(figs);
    const u = body.unit;
    $("unit-title").textContent = u.uid + " (electrode row " + u.row + ", column " + u.col + "; " + u.spike_count +
      " spikes" + (u.rate_hz !== null ? ", " + u.rate_hz.toFixed(2) + " Hz" : "") + (u.polarity ? ", " + u.polarity : "") + ")";
    body.figures.forEach((fig, i) => {
      const div = document.createElement("div");
      div.id = "unit-fig-" + i;
      div.className = "unit-fig";
      div.dataset.key = fig.key;
      figs.append(div);
    });
    for (const fig of body.figures) await embed(fig.item, fig.item.target_id, "unit");
    const table = $("features");
    clear(table);
    const head = table.createTHead().insertRow();
    for (const h of ["feature", "name", "value"]) { const th = document.createElement("th"); th.textContent = h; head.append(th); }
    const tbody = table.createTBody();
    for (const row of body.features) { const tr = tbody.insertRow(); for (const cell of row) tr.insertCell().textContent = cell; }
    $("features-title").hidden = false;
    unit.dataset.uid = uid;
    unit.dataset.state = "ready";
    status("");
    unit.scrollIntoView({block: "start"});
  } catch (error) { unit.dataset.state = "error"; status(error.message, true); }
}
window.hdmeaOpenUnit = openUnit;
document.addEventListener("hdmea-slice", (event) => {
  // a slider of the dataset plot moved: the heading names what is shown now
  $("plot-title").textContent = event.detail.title;
  $("plot").dataset.title = event.detail.title;
});

async function selectFile(id) {
  state.file = id;
  $("plot").dataset.state = "";
  $("mosaic").dataset.state = "";
  try { await loadTree(); status(""); } catch (error) { status(error.message, true); }
  if (!$("pane-rec").hidden) showRecording();
}

async function start() {
  $("tab-data").addEventListener("click", () => showPane("data"));
  $("tab-rec").addEventListener("click", () => showRecording());
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); showRecording(); });
  $("file").addEventListener("change", () => selectFile($("file").value));
  $("unit-select").addEventListener("change", () => { if ($("unit-select").value) openUnit($("unit-select").value); });
  try {
    const body = await api("files", {});
    const select = $("file");
    for (const file of body.files) {
      const option = document.createElement("option");
      option.value = file.id;
      option.textContent = file.name;
      select.append(option);
    }
    const first = body.first || (body.files[0] && body.files[0].id);
    if (!first) { status("no recording files (.h5) in " + body.folders.join(", "), true); return; }
    if (![...select.options].some((o) => o.value === first)) {
      const option = document.createElement("option"); option.value = first; option.textContent = first.split("/").slice(1).join("/"); select.append(option);
    }
    select.value = first;
    await selectFile(first);
    document.body.dataset.ready = "1";
  } catch (error) { status(error.message, true); }
}
start();
"""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; color: #1a1a1a; }
header { display: flex; gap: 1.2em; align-items: center; padding: 0.5em 1em; background: #24323f; color: #fff; }
header select { max-width: 28em; }
#status { margin-left: auto; font-size: 0.9em; }
#status.error { color: #ffb3a7; font-weight: bold; }
main { display: flex; height: calc(100vh - 2.6em); }
#side { width: 34%; min-width: 22em; overflow: auto; border-right: 1px solid #ccc; padding: 0.5em; font-size: 0.85em; }
#content { flex: 1; overflow: auto; padding: 0.5em 1em; }
#tree ul { list-style: none; padding-left: 1.1em; margin: 0; }
#tree > ul { padding-left: 0; }
.node .label { cursor: pointer; display: block; white-space: nowrap; padding: 1px 2px; border-radius: 3px; }
.node .label:hover { background: #eef3f8; }
.node .label.selected { background: #d5e5f5; }
.toggle { display: inline-block; width: 1.1em; color: #555; }
.meta { color: #666; margin-left: 0.6em; font-size: 0.92em; }
.more { color: #777; font-style: italic; }
#attrs { border-collapse: collapse; width: 100%; }
#attrs td, #features td, #features th { border-bottom: 1px solid #e3e3e3; padding: 2px 6px; vertical-align: top; word-break: break-word; }
#attrs td:first-child { color: #444; white-space: nowrap; }
nav { margin-bottom: 0.5em; }
.tab { border: 1px solid #aaa; background: #f4f4f4; padding: 0.3em 1em; cursor: pointer; }
.tab.active { background: #24323f; color: #fff; }
h2 { font-size: 1.05em; margin: 0.4em 0; word-break: break-all; }
#plot-info, #rec-summary { color: #555; font-size: 0.9em; margin-bottom: 0.4em; }
#plot-text:empty { display: none; }
#filters { display: flex; gap: 1em; flex-wrap: wrap; align-items: center; font-size: 0.9em; margin-bottom: 0.4em; }
.unit-fig { margin-bottom: 1em; }
#features { border-collapse: collapse; font-size: 0.85em; }
"""


def html() -> bytes:
    return _HTML.encode("utf-8")


def script() -> bytes:
    return _SCRIPT.encode("utf-8")


def style() -> bytes:
    return _STYLE.encode("utf-8")
