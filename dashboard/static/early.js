// Loaded in the sweep page's <head>: asks for the sweep's data at once, so that download overlaps
// with the browser parsing plotly.js; sweep.js takes the answer.
"use strict";
window.sweepSnapshot = fetch(`/api/sweeps/${encodeURIComponent(document.currentScript.dataset.sweep)}`,
                             {headers: {"accept": "application/json"}, cache: "no-store"});
