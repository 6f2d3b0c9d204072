// Shared by every page: DOM building (text only, never HTML strings), JSON requests, formatting.
"use strict";

const PAGE = document.body.dataset;
const POLL_MS = Number(PAGE.poll) || 1500;
const PLOT_CONFIG = {displaylogo: false, responsive: true, modeBarButtonsToRemove: ["sendDataToCloud", "lasso2d", "select2d"]};
const BEST_COLOUR = "#d62728";
const RUN_COLOUR = "rgba(31, 119, 180, 0.45)";
const VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"];

// An element with attributes and children; strings become text nodes, so stored text is never markup.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Plotly reads a few HTML-like tags in labels; entities make a stored name show as the text it is.
function plotText(value) {
  return String(value).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

async function getJSON(url) {
  const response = await fetch(url, {headers: {"accept": "application/json"}, cache: "no-store"});
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

async function postJSON(url, payload) {
  const response = await fetch(url, {
    method: "POST", cache: "no-store",
    headers: {"content-type": "application/json", "x-csrf-token": PAGE.csrf},
    body: JSON.stringify(payload || {}),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function setLive(ok, text) {
  const live = document.getElementById("live");
  live.textContent = text;
  live.classList.toggle("down", !ok);
}

function clock(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : "";
}

function number(value, digits = 4) {
  if (value === null || value === undefined || value === "") return "";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return String(value);
  return Math.abs(value) >= 1e4 || (value !== 0 && Math.abs(value) < 1e-3) ? value.toExponential(2) : value.toFixed(digits);
}

function count(value) {
  if (value === null || value === undefined) return "";
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)}k`;
  return String(value);
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
}

function bytes(size) {
  if (size >= 1 << 20) return `${(size / (1 << 20)).toFixed(1)} MiB`;
  if (size >= 1 << 10) return `${(size / (1 << 10)).toFixed(1)} KiB`;
  return `${size} B`;
}

function value(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") return number(v);
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function badge(state) {
  return el("span", {class: `state ${state}`}, state);
}

function runLink(id) {
  return el("a", {href: `/runs/${encodeURIComponent(id)}`}, id);
}

function viridis(t) {
  const i = Math.max(0, Math.min(VIRIDIS.length - 1, Math.round(t * (VIRIDIS.length - 1))));
  return VIRIDIS[i];
}

// Poll `step` every POLL_MS; a failure shows in the header and the next poll tries again.
function every(step) {
  const loop = async () => {
    try {
      await step();
      setLive(true, `live · ${new Date().toLocaleTimeString()}`);
    } catch (error) {
      setLive(false, `not updating: ${error.message}`);
    }
    setTimeout(loop, POLL_MS);
  };
  setTimeout(loop, POLL_MS);
}
