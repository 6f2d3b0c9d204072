// The sweeps page: every sweep in the store, refreshed while agents train.
"use strict";

function sweepRow(sweep) {
  const metric = sweep.metric ? `${sweep.metric.goal} ${sweep.metric.name}` : "";
  const best = sweep.best ? [number(sweep.best.value), " (", runLink(sweep.best.run), ")"] : [];
  const states = Object.entries(sweep.counts).map(([state, n]) => el("span", {class: "count"}, badge(state), ` ${n} `));
  const grid = sweep.grid ? `${sweep.grid.done}/${sweep.grid.total}` : "";
  const title = el("a", {href: `/sweeps/${encodeURIComponent(sweep.id)}`}, sweep.name ? `${sweep.name}` : sweep.id);
  return el("tr", {dataset: {sweep: sweep.id}},
    el("td", {}, title, sweep.name ? el("span", {class: "note"}, ` ${sweep.id}`) : null),
    el("td", {title: sweep.state_reason || ""}, badge(sweep.state)),
    el("td", {}, sweep.method), el("td", {}, metric), el("td", {class: "num"}, best),
    el("td", {}, states.length ? states : "no runs yet"), el("td", {class: "num"}, grid),
    el("td", {}, clock(sweep.created_at)));
}

async function refresh() {
  const data = await getJSON("/api/sweeps");
  const body = document.querySelector("#sweeps tbody");
  body.replaceChildren(...data.sweeps.slice().reverse().map(sweepRow));
  document.getElementById("empty").hidden = data.sweeps.length > 0;
}

refresh().then(() => setLive(true, "live"), (error) => setLive(false, error.message));
every(refresh);
