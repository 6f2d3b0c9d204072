// A run page: its curves (live while it trains), full config, attempts, failure and artifacts.
"use strict";

const RUN_ID = PAGE.run;
const R = {cursor: 0, sweepId: null, data: null, other: null};
const PAIRS = [["acc-curves", "accuracy", ["train_acc", "val_acc"]], ["loss-curves", "loss", ["train_loss", "val_loss"]]];
const SPLIT_COLOURS = {train: "#1f77b4", val: "#d62728"};

function trace(key) {
  const h = R.data.history;
  return {type: "scatter", mode: "lines+markers", x: h.epoch, y: h.values[key] || [], name: plotText(key),
          line: {color: SPLIT_COLOURS[key.split("_")[0]] || "#555"}, marker: {size: 5},
          hovertemplate: `epoch %{x}<br>${plotText(key)} %{y:.4f}<extra></extra>`};
}

function drawCurves() {
  for (const [id, title, keys] of PAIRS) {
    const present = keys.filter((k) => k in R.data.history.values);
    Plotly.react(document.getElementById(id), present.map(trace), {
      margin: {l: 60, r: 20, t: 30, b: 45}, title: {text: `training and validation ${title}`, font: {size: 13}},
      xaxis: {title: {text: "epoch"}}, yaxis: {title: {text: title}}, legend: {orientation: "h", y: -0.2},
      uirevision: id,
    }, PLOT_CONFIG);
  }
  const select = document.getElementById("other-metric");
  if (!R.other || !R.data.metrics.includes(R.other)) R.other = R.data.metrics.find((m) => m.startsWith("lr")) || R.data.metrics[0];
  select.replaceChildren(...R.data.metrics.map((m) => el("option", {value: m, selected: m === R.other}, m)));
  Plotly.react(document.getElementById("other-curve"), R.other ? [trace(R.other)] : [], {
    margin: {l: 60, r: 20, t: 10, b: 45}, xaxis: {title: {text: "epoch"}}, yaxis: {title: {text: plotText(R.other || "")}},
    showlegend: false, uirevision: R.other,
  }, PLOT_CONFIG);
}

function kvRows(object) {
  return Object.entries(object).map(([key, v]) => el("tr", {}, el("td", {}, key), el("td", {}, value(v))));
}

function render() {
  const d = R.data, run = d.run;
  document.getElementById("run-state").replaceChildren(badge(run.state));
  const metric = d.sweep.metric;
  const facts = [];
  if (metric && run.score !== null) facts.push(`best ${metric.name} ${number(run.score)}`);
  if (run.test_acc !== null) facts.push(`test acc ${number(run.test_acc)}`);
  facts.push(`${run.epochs} epochs`);
  if (run.params !== null) facts.push(`${count(run.params)} parameters`);
  if (run.wall_seconds !== null) facts.push(`wall ${duration(run.wall_seconds)}`);
  facts.push(`${run.attempts} attempt(s)`);
  if (run.owner) facts.push(`held by ${run.owner}`);
  document.getElementById("run-facts").textContent = facts.join(" · ");
  const failure = document.getElementById("run-failure");
  failure.hidden = !run.failure;
  failure.textContent = run.failure ? `failure: ${run.failure}` : "";
  const stop = document.getElementById("run-stop");
  stop.hidden = !d.stop_requested;
  stop.textContent = d.stop_requested ? `stop requested: ${d.stop_requested}` : "";
  document.querySelector("#attempts tbody").replaceChildren(...d.attempts.map((a) => el("tr", {},
    el("td", {class: "num"}, a.attempt), el("td", {}, a.agent), el("td", {}, a.host), el("td", {}, clock(a.started_at)),
    el("td", {}, clock(a.ended_at)), el("td", {class: "num"}, a.resumed_from_epoch), el("td", {}, a.outcome ? badge(a.outcome) : "running"),
    el("td", {class: "detail"}, a.detail || ""))));
  document.querySelector("#config tbody").replaceChildren(...kvRows(d.full_config));
  document.querySelector("#summary tbody").replaceChildren(...kvRows(d.summary));
  document.getElementById("per-class-block").hidden = !d.per_class.length;
  document.querySelector("#per-class tbody").replaceChildren(...d.per_class.map((c) => el("tr", {},
    el("td", {}, c.class), el("td", {class: "num"}, number(c.test_acc)), el("td", {class: "num"}, c.predicted),
    el("td", {class: "num"}, c.images))));
  document.getElementById("folder").textContent = d.folder ? `in ${d.folder}` : "this run has no artifact folder";
  const base = `/runs/${encodeURIComponent(RUN_ID)}/artifacts/`;
  document.querySelector("#artifacts tbody").replaceChildren(...(d.artifacts.length ? d.artifacts.map((a) => el("tr", {},
    el("td", {}, el("a", {href: base + a.path.split("/").map(encodeURIComponent).join("/"), download: a.path.split("/").pop()}, a.path)),
    el("td", {class: "num"}, bytes(a.bytes)))) : [el("tr", {}, el("td", {colspan: 2}, "no files yet"))]));
  drawCurves();
}

async function load() {
  R.data = await getJSON(`/api/runs/${encodeURIComponent(RUN_ID)}`);
  R.cursor = R.data.cursor;
  R.sweepId = R.data.sweep.id;
  render();
}

async function poll() {
  const update = await getJSON(`/api/sweeps/${encodeURIComponent(R.sweepId)}/changes?since=${R.cursor}`);
  R.cursor = update.cursor;
  const mine = update.runs.find((r) => r.id === RUN_ID);
  const epochs = update.epochs.filter((e) => e.run === RUN_ID);
  if (mine && (mine.state !== R.data.run.state || mine.attempts !== R.data.run.attempts)) return load();  // attempts, artifacts
  if (mine) R.data.run = mine;
  if (!epochs.length && !mine) return;
  const h = R.data.history;
  for (const e of epochs) {
    let at = h.epoch.indexOf(e.epoch);
    if (at < 0) { h.epoch.push(e.epoch); at = h.epoch.length - 1; for (const k of Object.keys(h.values)) h.values[k].push(null); }
    for (const [k, v] of Object.entries(e.values)) {
      if (!(k in h.values)) { h.values[k] = new Array(h.epoch.length).fill(null); R.data.metrics.push(k); }
      h.values[k][at] = v;
    }
  }
  render();
}

document.getElementById("other-metric").addEventListener("change", (event) => { R.other = event.target.value; drawCurves(); });
load().then(() => { document.body.dataset.ready = "1"; setLive(true, "live"); every(poll); },
            (error) => setLive(false, error.message));
