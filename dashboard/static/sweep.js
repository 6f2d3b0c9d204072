// A sweep page: runs table, every run's curves, the sweep panels; kept live by polling for changes.
"use strict";

const SWEEP_ID = PAGE.sweep;
const API = `/api/sweeps/${encodeURIComponent(SWEEP_ID)}`;
const PANELS_EVERY_MS = 10000;  // while epochs arrive, the panels are refreshed at least this often
const MARKERS_UP_TO = 40;  // runs: beyond this the curves are lines only
const PAGE_ROWS = 100;  // runs table rows per page: a thousand rows of DOM would slow every update
const BROKEN = new Set(["failed", "crashed"]);
const S = {
  curvesQueued: false, cursor: 0, sweep: null, config: null, parameters: [], metrics: [], metric: null,
  runs: new Map(), hist: new Map(), bestId: null, leaderId: null,
  sort: {key: "score", dir: -1}, page: 0, panelsAt: 0, panelsBusy: false, tableQueued: false,
};

// -- history -----------------------------------------------------------------------------------

function emptyHistory() { return {epoch: [], values: {}}; }

// Put one epoch into a run's columns, in epoch order; an epoch seen before (a retried write) is replaced.
function addEpoch(runId, epoch, values) {
  if (!S.hist.has(runId)) S.hist.set(runId, emptyHistory());
  const h = S.hist.get(runId);
  for (const key of Object.keys(values)) {
    if (!(key in h.values)) h.values[key] = new Array(h.epoch.length).fill(null);
    if (!S.metrics.includes(key)) { S.metrics.push(key); fillMetricSelect(); }
  }
  const at = h.epoch.indexOf(epoch);
  if (at >= 0) {
    for (const key of Object.keys(h.values)) h.values[key][at] = key in values ? values[key] : null;
    return;
  }
  let index = h.epoch.length;
  while (index > 0 && h.epoch[index - 1] > epoch) index--;
  h.epoch.splice(index, 0, epoch);
  for (const key of Object.keys(h.values)) h.values[key].splice(index, 0, key in values ? values[key] : null);
}

function series(runId) {
  const h = S.hist.get(runId) || emptyHistory();
  return {x: h.epoch.slice(), y: (h.values[S.metric] || []).slice()};
}

// -- curves ------------------------------------------------------------------------------------
// Every run but the best is one segment of a single trace (segments split by nulls, `meta` lists
// their runs in order): one SVG path draws a thousand runs in milliseconds, where a trace per run
// would take Plotly seconds. The best finished run is its own trace, red and on top.

function orderedRunIds() {
  return [...S.runs.values()].sort((a, b) => a.seq - b.seq || a.created_at - b.created_at).map((r) => r.id);
}

function curveTraces() {
  const x = [], y = [], text = [], meta = [];
  for (const id of orderedRunIds()) {
    if (id === S.bestId) continue;
    const {x: xs, y: ys} = series(id);
    if (!xs.length) continue;
    meta.push(id);
    for (let i = 0; i < xs.length; i++) { x.push(xs[i]); y.push(ys[i] ?? null); text.push(id); }
    x.push(null); y.push(null); text.push(null);
  }
  const markers = S.runs.size <= MARKERS_UP_TO;
  const hover = `run %{text}<br>epoch %{x}<br>${plotText(S.metric)} %{y:.4f}<extra></extra>`;
  const traces = [{type: "scatter", mode: markers ? "lines+markers" : "lines", x, y, text, meta, connectgaps: false,
                   line: {color: RUN_COLOUR, width: 1.2}, marker: {size: 5}, hovertemplate: hover, showlegend: false}];
  if (S.bestId && S.runs.has(S.bestId)) {
    const best = series(S.bestId);
    traces.push({type: "scatter", mode: "lines+markers", x: best.x, y: best.y, text: best.x.map(() => S.bestId),
                 meta: [S.bestId], line: {color: BEST_COLOUR, width: 3}, marker: {size: 5}, hovertemplate: hover,
                 showlegend: false});
  }
  return traces;
}

function curvesLayout() {
  return {
    margin: {l: 60, r: 20, t: 10, b: 45}, hovermode: "closest", uirevision: S.metric,
    xaxis: {title: {text: "epoch"}, rangemode: "tozero"}, yaxis: {title: {text: plotText(S.metric || "")}},
  };
}

function drawCurves() {
  S.curvesQueued = false;
  const gd = document.getElementById("curves");
  const drawn = Plotly.react(gd, curveTraces(), curvesLayout(), PLOT_CONFIG);
  if (!gd.dataset.bound) {
    gd.on("plotly_click", (event) => {
      const run = event.points[0].text;
      if (run) location.href = `/runs/${encodeURIComponent(run)}`;
    });
    gd.dataset.bound = "1";
  }
  const best = S.bestId ? ` Red: the best finished run (${S.bestId}). Click a curve to open its run.` : "";
  document.getElementById("curves-note").textContent = `${S.runs.size} runs.${best}`;
  return drawn;
}

function queueCurves() {
  if (S.curvesQueued) return;
  S.curvesQueued = true;
  requestAnimationFrame(drawCurves);
}

// -- runs table --------------------------------------------------------------------------------

function columns() {
  const metric = S.sweep.metric ? S.sweep.metric.name : "metric";
  const base = [
    {key: "id", label: "run", get: (r) => r.seq, cell: (r) => runLink(r.id)},
    {key: "state", label: "state", get: (r) => r.state, cell: (r) => badge(r.state), title: (r) => r.failure || ""},
    {key: "score", label: `best ${metric}`, get: (r) => r.score, num: true, cell: (r) => number(r.score)},
    {key: "test_acc", label: "test acc", get: (r) => r.test_acc, num: true, cell: (r) => number(r.test_acc)},
    {key: "epochs", label: "epochs", get: (r) => r.epochs, num: true, cell: (r) => r.epochs},
    {key: "params", label: "params", get: (r) => r.params, num: true, cell: (r) => count(r.params)},
    {key: "wall", label: "wall time", get: (r) => r.wall_seconds, num: true, cell: (r) => duration(r.wall_seconds)},
  ];
  const params = S.parameters.map((p) => ({
    key: `p:${p.name}`, label: p.name, get: (r) => r.config[p.name], num: p.kind === "numeric",
    cell: (r) => value(r.config[p.name]),
  }));
  return base.concat(params);
}

function compare(a, b) {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;  // empty cells last in either direction
  if (b === null || b === undefined) return -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), undefined, {numeric: true});
}

function visibleRuns(cols) {
  const text = document.getElementById("run-filter").value.trim().toLowerCase();
  const state = document.getElementById("state-filter").value;
  const column = cols.find((c) => c.key === S.sort.key) || cols[0];
  return [...S.runs.values()].filter((r) => {
    if (state && r.state !== state) return false;
    if (!text) return true;
    const haystack = [r.id, r.state, r.failure || "", ...Object.values(r.config).map(value)].join(" ").toLowerCase();
    return haystack.includes(text);
  }).sort((a, b) => {
    const va = column.get(a), vb = column.get(b);
    if (va === null || va === undefined || vb === null || vb === undefined) return compare(va, vb);
    return S.sort.dir * compare(va, vb);
  });
}

function renderTable() {
  S.tableQueued = false;
  const cols = columns();
  const head = document.querySelector("#runs thead tr");
  head.replaceChildren(...cols.map((c) => el("th", {
    class: [c.num ? "num" : "", c.key === S.sort.key ? (S.sort.dir > 0 ? "asc" : "desc") : ""].join(" ").trim() || null,
    dataset: {key: c.key}, title: "sort",
  }, c.label)));
  const rows = visibleRuns(cols);
  const pages = Math.max(1, Math.ceil(rows.length / PAGE_ROWS));
  S.page = Math.min(S.page, pages - 1);
  const first = S.page * PAGE_ROWS, shown = rows.slice(first, first + PAGE_ROWS);
  const fragment = document.createDocumentFragment();
  for (const r of shown) {
    fragment.append(el("tr", {class: r.id === S.bestId ? "best" : null, dataset: {run: r.id}},
      cols.map((c) => el("td", {class: c.num ? "num" : null, title: c.title ? c.title(r) : null}, c.cell(r)))));
  }
  document.querySelector("#runs tbody").replaceChildren(fragment);
  document.getElementById("run-count").textContent = rows.length > PAGE_ROWS
    ? `rows ${first + 1}–${first + shown.length} of ${rows.length} (${S.runs.size} runs)` : `${rows.length} of ${S.runs.size} runs`;
  document.getElementById("page-prev").hidden = document.getElementById("page-next").hidden = pages === 1;
  document.getElementById("page-prev").disabled = S.page === 0;
  document.getElementById("page-next").disabled = S.page >= pages - 1;
  const states = new Set([...S.runs.values()].map((r) => r.state));
  const select = document.getElementById("state-filter");
  for (const state of states) {
    if (![...select.options].some((o) => o.value === state)) select.append(el("option", {value: state}, state));
  }
}

function queueTable() {
  if (S.tableQueued) return;
  S.tableQueued = true;
  requestAnimationFrame(renderTable);
}

// -- header ------------------------------------------------------------------------------------

function renderHead() {
  const sweep = S.sweep;
  document.getElementById("sweep-name").textContent = sweep.name || sweep.id;
  document.getElementById("sweep-state").replaceChildren(badge(sweep.state));
  document.getElementById("sweep-state").title = sweep.state_reason || "";
  const metric = sweep.metric ? `${sweep.metric.goal} ${sweep.metric.name}` : "no metric";
  const facts = [`sweep ${sweep.id}`, sweep.method, metric];
  if (sweep.state_reason) facts.push(sweep.state_reason);
  document.getElementById("sweep-facts").textContent = facts.join(" · ");
  const counts = new Map();
  for (const r of S.runs.values()) counts.set(r.state, (counts.get(r.state) || 0) + 1);
  const parts = [...counts.entries()].map(([state, n]) => el("span", {class: "count"}, badge(state), ` ${n} `));
  if (sweep.grid) {
    const done = [...S.runs.values()].filter((r) => ["finished", "failed", "killed"].includes(r.state)).length;
    parts.push(`grid ${done}/${sweep.grid.total} `);
  }
  const best = S.bestId && S.runs.get(S.bestId);
  if (best) parts.push("· best finished ", runLink(best.id), ` ${number(best.score)}`);
  document.getElementById("sweep-counts").replaceChildren(...(parts.length ? parts : ["no runs yet"]));
  document.title = `${sweep.name || sweep.id} · sweep dashboard`;
}

// -- panels (report/panels.py, shared with `sweep report`) ----------------------------------------

function note(id, text) { document.getElementById(id).textContent = text || ""; }

function drawParallel(panels) {
  const gd = document.getElementById("parallel");
  const p = panels.parallel;
  if (!p) { Plotly.purge(gd); gd.replaceChildren(); return note("parallel-note", panels.skipped.parallel); }
  const lo = Math.min(...p.scores), hi = Math.max(...p.scores), span = hi - lo || 1;
  const maximize = panels.metric.goal === "maximize";
  const xs = p.axes.map((_, i) => i);
  const bins = new Map();
  p.run_ids.forEach((id, row) => {
    const key = id === panels.best_id ? "best" : viridis(maximize ? (p.scores[row] - lo) / span : (hi - p.scores[row]) / span);
    if (!bins.has(key)) bins.set(key, {x: [], y: [], ids: []});
    const bin = bins.get(key);
    for (const i of xs) { bin.x.push(i); bin.y.push(p.axes[i].positions[row]); bin.ids.push(`${id}: ${number(p.scores[row])}`); }
    bin.x.push(null); bin.y.push(null); bin.ids.push(null);
  });
  const traces = [...bins.entries()].sort(([a], [b]) => (a === "best") - (b === "best")).map(([key, bin]) => ({
    type: "scatter", mode: "lines", x: bin.x, y: bin.y, text: bin.ids.map((t) => t && plotText(t)), hoverinfo: "text",
    line: {color: key === "best" ? BEST_COLOUR : key, width: key === "best" ? 3.5 : 1.3}, opacity: key === "best" ? 1 : 0.75,
    showlegend: false, connectgaps: false,
  }));
  traces.push({type: "scatter", mode: "markers", x: [null], y: [null], hoverinfo: "skip", showlegend: false,
    marker: {color: [lo, hi], cmin: lo, cmax: hi, colorscale: "Viridis", reversescale: !maximize, showscale: true,
             colorbar: {title: {text: plotText(panels.metric.name)}, thickness: 12}}});
  const annotations = [], shapes = [];
  p.axes.forEach((axis, i) => {
    shapes.push({type: "line", x0: i, x1: i, y0: 0, y1: 1, line: {color: "#333", width: 1}});
    for (const [position, label] of axis.ticks) {
      annotations.push({x: i, y: position, text: plotText(label), showarrow: false, xanchor: "left", xshift: 4,
                        font: {size: 10}, bgcolor: "rgba(255,255,255,0.75)"});
    }
  });
  Plotly.react(gd, traces, {
    margin: {l: 20, r: 20, t: 10, b: 60}, hovermode: "closest", shapes, annotations,
    xaxis: {tickvals: xs, ticktext: p.axes.map((a) => plotText(a.label)), range: [-0.2, xs.length - 0.5], showgrid: false, zeroline: false},
    yaxis: {range: [-0.05, 1.05], visible: false},
  }, PLOT_CONFIG);
  note("parallel-note", `Each line is a run (${p.run_ids.length} scored, failed and crashed excluded) through its ` +
       `hyperparameters to its best ${panels.metric.name}; the best finished run is red.`);
}

function drawImportance(panels) {
  const gd = document.getElementById("importance");
  const rows = panels.importance.slice().reverse();
  if (!rows.length) { Plotly.purge(gd); gd.replaceChildren(); return note("importance-note", panels.skipped.importance); }
  const names = rows.map((r) => plotText(r.name));
  Plotly.react(gd, [
    {type: "bar", orientation: "h", y: names, x: rows.map((r) => r.importance), marker: {color: "#1f77b4"},
     name: "importance", xaxis: "x", yaxis: "y", hovertemplate: "%{y}: importance %{x:.3f}<extra></extra>"},
    {type: "bar", orientation: "h", y: names, x: rows.map((r) => r.correlation), name: "correlation", xaxis: "x2", yaxis: "y",
     marker: {color: rows.map((r) => (r.correlation >= 0 ? "#2ca02c" : "#d62728"))},
     hovertemplate: "%{y}: r = %{x:+.3f}<extra></extra>"},
  ], {
    margin: {l: 160, r: 20, t: 30, b: 40}, showlegend: false, height: Math.max(260, 32 * rows.length + 90),
    xaxis: {domain: [0, 0.47], range: [0, 1.05], title: {text: "importance (random forest)"}},
    xaxis2: {domain: [0.53, 1], range: [-1.05, 1.05], title: {text: "correlation (Pearson r)"}, zeroline: true},
    yaxis: {automargin: true},
  }, PLOT_CONFIG);
  note("importance-note", `Random-forest importance of each hyperparameter for predicting ${panels.metric.name}, and ` +
       `its correlation with it (${panels.scored} scored runs); categorical values are one-hot encoded.`);
}

function drawScatter(panels) {
  const gd = document.getElementById("scatter");
  document.getElementById("scatter-title").textContent = `${panels.metric.name} against each hyperparameter`;
  if (!panels.scatter.length) { Plotly.purge(gd); gd.replaceChildren(); return note("scatter-note", panels.skipped.scatter); }
  const columnsCount = Math.min(3, panels.scatter.length), rowsCount = Math.ceil(panels.scatter.length / columnsCount);
  const traces = [], layout = {
    grid: {rows: rowsCount, columns: columnsCount, pattern: "independent", xgap: 0.12, ygap: 0.3},
    margin: {l: 60, r: 20, t: 10, b: 50}, showlegend: false, hovermode: "closest", height: 300 * rowsCount + 40,
  };
  panels.scatter.forEach((panel, i) => {
    const axis = i ? String(i + 1) : "";
    const plain = panel.run_ids.map((id, j) => j).filter((j) => panel.run_ids[j] !== panels.best_id);
    const best = panel.run_ids.map((id, j) => j).filter((j) => panel.run_ids[j] === panels.best_id);
    for (const [points, marker] of [[plain, {color: "#1f77b4", size: 7, opacity: 0.8}], [best, {color: BEST_COLOUR, size: 16, symbol: "star"}]]) {
      traces.push({type: "scatter", mode: "markers", xaxis: `x${axis}`, yaxis: `y${axis}`, marker,
        x: points.map((j) => panel.x[j]), y: points.map((j) => panel.scores[j]), customdata: points.map((j) => panel.run_ids[j]),
        hovertemplate: `run %{customdata}<br>${plotText(panel.parameter)} %{x}<br>${plotText(panels.metric.name)} %{y:.4f}<extra></extra>`});
    }
    const xaxis = {title: {text: plotText(panel.parameter)}, type: panel.log ? "log" : "linear"};
    if (panel.categories) Object.assign(xaxis, {tickvals: panel.categories.map((_, k) => k), ticktext: panel.categories.map(plotText), range: [-0.5, panel.categories.length - 0.5]});
    layout[`xaxis${axis}`] = xaxis;
    layout[`yaxis${axis}`] = {title: {text: i % columnsCount === 0 ? plotText(panels.metric.name) : ""}};
  });
  Plotly.react(gd, traces, layout, PLOT_CONFIG);
  note("scatter-note", `Every scored run's best ${panels.metric.name} against the value of each swept hyperparameter; the star is the best finished run.`);
}

function drawConfusion(panels) {
  const link = document.getElementById("best-link");
  link.textContent = panels.best_id || "none finished yet";
  link.href = panels.best_id ? `/runs/${encodeURIComponent(panels.best_id)}` : "#";
  const matrix = document.getElementById("confusion"), classes = document.getElementById("classes");
  const c = panels.confusion;
  if (!c) { for (const gd of [matrix, classes]) { Plotly.purge(gd); gd.replaceChildren(); } return note("confusion-note", panels.skipped.confusion); }
  const names = c.classes.map(plotText);
  Plotly.react(matrix, [{type: "heatmap", z: c.normalised, x: names, y: names, text: c.counts, texttemplate: "%{text}",
    colorscale: "Blues", reversescale: true, zmin: 0, zmax: 1, colorbar: {title: {text: "share of true class"}, thickness: 12},
    hovertemplate: "true %{y}, predicted %{x}: %{text} (%{z:.2f})<extra></extra>"}],
    {margin: {l: 90, r: 10, t: 30, b: 90}, title: {text: "Test-set confusion matrix", font: {size: 13}},
     xaxis: {title: {text: "predicted class"}}, yaxis: {title: {text: "true class"}, autorange: "reversed"}}, PLOT_CONFIG);
  Plotly.react(classes, [
    {type: "bar", x: names, y: c.true_totals, name: "true", marker: {color: "#7f7f7f"}},
    {type: "bar", x: names, y: c.predicted_totals, name: "predicted", marker: {color: "#2ca02c"}},
  ], {barmode: "group", margin: {l: 60, r: 10, t: 30, b: 90}, title: {text: "Predicted against true class distribution", font: {size: 13}},
      yaxis: {title: {text: "test images"}}, legend: {orientation: "h", y: 1.1}}, PLOT_CONFIG);
  note("confusion-note", "Test-set predictions of the best finished run, without test-time augmentation.");
}

// A sweep with `seed` among its parameters: each setting of the others, pooled over its finished seeds.
function drawOverSeeds(panels) {
  const rows = panels.over_seeds || [];
  document.getElementById("over-seeds-section").hidden = !rows.length;
  if (!rows.length) return;
  const metric = panels.metric.name;
  const percent = (v) => (v === null || v === undefined ? "" : `${(100 * v).toFixed(2)}%`);
  const shown = metric.endsWith("_acc") ? percent : number;
  const table = document.getElementById("over-seeds");
  table.tHead.rows[0].replaceChildren(...["#", "setting", "seeds", `mean ${metric}`, "range", "mean test acc TTA"]
    .map((name) => el("th", null, name)));
  table.tBodies[0].replaceChildren(...rows.map((row, i) => el("tr", null,
    el("td", {class: "num"}, i + 1),
    el("td", null, Object.entries(row.setting).map(([k, v]) => `${k}=${value(v)}`).join(", ") || "(only the seed is swept)"),
    el("td", null, row.seeds.map(value).join(", ")),
    el("td", {class: "num"}, shown(row.score_mean)),
    el("td", {class: "num"}, `${shown(row.score_min)}–${shown(row.score_max)}`),
    el("td", {class: "num"}, percent(row.test_acc_tta_mean)))));
  note("over-seeds-note", `Finished runs pooled by their setting of the other swept parameters; best mean ${metric} ` +
       "first. Test accuracy is reported only.");
}

async function loadPanels() {
  if (S.panelsBusy) return;
  S.panelsBusy = true;
  try {
    const panels = await getJSON(`${API}/panels`);
    S.panelsAt = Date.now();
    if (!panels.metric) {
      for (const id of ["parallel-note", "importance-note", "scatter-note", "confusion-note"]) note(id, panels.skipped.all);
      return;
    }
    const previous = S.bestId;
    S.bestId = panels.best_id;
    S.leaderId = panels.leader_id;
    if (previous !== S.bestId) queueCurves();
    drawParallel(panels);
    drawImportance(panels);
    drawScatter(panels);
    drawConfusion(panels);
    drawOverSeeds(panels);
    renderHead();
    queueTable();
    document.body.dataset.panels = String(panels.cursor);
  } finally {
    S.panelsBusy = false;
  }
}

// -- live updates --------------------------------------------------------------------------------

async function poll() {
  const update = await getJSON(`${API}/changes?since=${S.cursor}`);
  S.cursor = update.cursor;
  const stateChanged = update.sweep.state !== S.sweep.state;
  Object.assign(S.sweep, update.sweep);
  const newRuns = [];
  let runChanged = false;
  for (const run of update.runs) {
    const old = S.runs.get(run.id);
    if (!old) newRuns.push(run.id);
    else if (old.state !== run.state) runChanged = true;
    S.runs.set(run.id, run);
  }
  for (const epoch of update.epochs) addEpoch(epoch.run, epoch.epoch, epoch.values);
  if (newRuns.length || update.epochs.length) queueCurves();
  if (update.runs.length || update.epochs.length || stateChanged) { renderHead(); queueTable(); }
  document.body.dataset.cursor = String(S.cursor);
  if (runChanged || newRuns.length || stateChanged || (update.epochs.length && Date.now() - S.panelsAt > PANELS_EVERY_MS)) {
    loadPanels().catch((error) => setLive(false, `panels: ${error.message}`));
  }
}

// -- controls ------------------------------------------------------------------------------------

function setUpControls() {
  if (PAGE.control !== "on") return;
  const box = document.getElementById("controls");
  box.hidden = false;
  const actions = (PAGE.actions || "").split(" ");
  for (const button of box.querySelectorAll("button")) {
    button.hidden = !actions.includes(button.dataset.action);
    button.addEventListener("click", async () => {
      if (!confirm(`${button.textContent} for sweep ${SWEEP_ID}?`)) return;
      try {
        const result = await postJSON(`${API}/${button.dataset.action}`, {});
        note("control-result", `${button.dataset.action}: ${result.state || "done"}`);
      } catch (error) {
        note("control-result", `${button.dataset.action} refused: ${error.message}`);
      }
    });
  }
}

// -- start ---------------------------------------------------------------------------------------

function fillMetricSelect() {
  const select = document.getElementById("curve-metric");
  select.replaceChildren(...S.metrics.map((m) => el("option", {value: m, selected: m === S.metric}, m)));
}

function painted() {
  return new Promise((done) => requestAnimationFrame(() => setTimeout(done)));
}

function loadScript(src) {
  return new Promise((loaded, failed) => {
    const script = el("script", {src});
    script.addEventListener("load", loaded);
    script.addEventListener("error", () => failed(new Error(`could not load ${src}`)));
    document.head.append(script);
  });
}

// early.js asked for the snapshot while plotly.js was still loading; take its answer.
async function firstSnapshot() {
  const response = await window.sweepSnapshot;
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

async function start() {
  const snapshot = await firstSnapshot();
  S.cursor = snapshot.cursor;
  S.sweep = snapshot.sweep;
  S.parameters = snapshot.parameters;
  S.metrics = snapshot.metrics;
  S.metric = snapshot.sweep.metric && S.metrics.includes(snapshot.sweep.metric.name) ? snapshot.sweep.metric.name : (S.metrics[0] || "val_acc");
  for (const run of snapshot.runs) S.runs.set(run.id, run);
  for (const [id, columns] of Object.entries(snapshot.histories)) S.hist.set(id, columns);
  document.getElementById("sweep-config").textContent = JSON.stringify(snapshot.config, null, 2);
  fillMetricSelect();
  document.getElementById("curve-metric").addEventListener("change", (event) => { S.metric = event.target.value; drawCurves(); });
  document.getElementById("run-filter").addEventListener("input", () => { S.page = 0; queueTable(); });
  document.getElementById("state-filter").addEventListener("change", () => { S.page = 0; queueTable(); });
  document.getElementById("page-prev").addEventListener("click", () => { S.page--; queueTable(); });
  document.getElementById("page-next").addEventListener("click", () => { S.page++; queueTable(); });
  document.querySelector("#runs thead").addEventListener("click", (event) => {
    const th = event.target.closest("th");
    if (!th) return;
    S.sort = {key: th.dataset.key, dir: S.sort.key === th.dataset.key ? -S.sort.dir : (th.dataset.key === "id" ? 1 : -1)};
    queueTable();
  });
  renderHead();
  renderTable();
  setUpControls();
  document.body.dataset.cursor = String(S.cursor);
  await painted();
  document.body.dataset.tableMs = String(Math.round(performance.now()));  // since navigation started
  // plotly.js is large: the table is on screen before it runs (the <head> already asked for it).
  await loadScript("/static/plotly.min.js");
  document.body.dataset.plotlyMs = String(Math.round(performance.now()));
  await drawCurves();
  await painted();
  document.body.dataset.readyMs = String(Math.round(performance.now()));
  document.body.dataset.ready = "1";
  setLive(true, "live");
  loadPanels().catch((error) => setLive(false, `panels: ${error.message}`));
  every(poll);
}

start().catch((error) => setLive(false, error.message));
