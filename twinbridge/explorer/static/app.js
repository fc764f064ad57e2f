// The explorer page: plain browser JavaScript (no build step), cytoscape from /vendor, data from /api only.
// Every value from the twins is put in the page with textContent, never as HTML: twin data is untrusted.
"use strict";

const state = {
  cy: null, twins: new Map(), selected: null, paused: false, missed: 0,
  times: [], total: 0, continuation: null, lastQuery: null, hits: new Set(),
};

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
};
const show = (value) => value === undefined ? "" : (typeof value === "string" ? value : JSON.stringify(value));

async function api(path, options = {}) {
  const init = { headers: { Accept: "application/json" }, ...options };
  if (options.body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(`/api/${path}`, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const e = (data && data.error) || {};
    throw new Error(`${e.code || response.status}: ${e.message || response.statusText}`);
  }
  return data;
}

// ---- colours by model ---------------------------------------------------------------------------------------------
const PALETTE = ["#0b5cad", "#1a7f37", "#8250df", "#bc4c00", "#0a7ea4", "#bf3989", "#6e7781", "#9a6700"];
const modelColours = new Map();
function colourOf(model) {
  if (!modelColours.has(model)) modelColours.set(model, PALETTE[modelColours.size % PALETTE.length]);
  return modelColours.get(model);
}
const modelOf = (twin) => (twin.$metadata && twin.$metadata.$model) || "?";
const shortModel = (model) => model.replace(/^dtmi:/, "");

// ---- graph --------------------------------------------------------------------------------------------------------
function nodeData(twin) {
  const model = modelOf(twin);
  const connection = twin.connectionState || "";
  return { id: twin.$dtId, label: twin.$dtId, model, colour: colourOf(model), connection };
}

function buildGraph(data) {
  const elements = [];
  const n = data.twins.length, m = data.relationships.length;
  state.twins.clear();
  for (const twin of data.twins) {
    state.twins.set(twin.$dtId, twin);
    elements.push({ group: "nodes", data: nodeData(twin), classes: nodeClasses(twin) });
  }
  for (const rel of data.relationships) {
    elements.push({ group: "edges", data: {
      id: `rel:${rel.$sourceId}:${rel.$relationshipId}`, source: rel.$sourceId, target: rel.$targetId,
      label: rel.$relationshipName || "" } });
  }
  // the list, legend and note first: they take their room before cytoscape measures the graph's box
  renderList();
  renderLegend();
  $("graph-note").textContent = `${n} twins, ${m} relationships` +
    (data.truncated ? " (more exist: the graph shows the first ones; use a query to find the others)" : "");
  if (!window.cytoscape) {
    $("graph").textContent = "The graph library is missing (node_modules/cytoscape): run `make install`. " +
      "The list below still works.";
  } else {
    if (state.cy) state.cy.destroy();
    state.cy = window.cytoscape({
      container: $("graph"), elements, wheelSensitivity: 0.3, minZoom: 0.05, maxZoom: 4,
      layout: data.twins.length <= 400 ? { name: "cose", animate: false, randomize: false, nodeRepulsion: 9000 }
                                        : { name: "grid" },
      style: [
        { selector: "node", style: { "background-color": "data(colour)", label: "data(label)", "font-size": 9,
          color: "#1b1f24", "text-valign": "bottom", "text-margin-y": 3, width: 22, height: 22,
          "border-width": 3, "border-color": "#d0d7de" } },
        { selector: "node.connected", style: { "border-color": "#1a7f37" } },
        { selector: "node.disconnected", style: { "border-color": "#8c959f", "border-style": "dashed" } },
        { selector: "node:selected", style: { "overlay-color": "#0b5cad", "overlay-opacity": 0.25,
          "overlay-padding": 6 } },
        { selector: "node.hit", style: { "underlay-color": "#ffb000", "underlay-opacity": 0.6,
          "underlay-padding": 7 } },
        { selector: "node.dim", style: { opacity: 0.3 } },
        { selector: "node.flash", style: { "background-color": "#ffd33d", width: 32, height: 32 } },
        { selector: "edge", style: { width: 1.5, "line-color": "#8c959f", "target-arrow-color": "#8c959f",
          "target-arrow-shape": "triangle", "curve-style": "bezier", label: "data(label)", "font-size": 7,
          color: "#57606a", "text-rotation": "autorotate", "text-background-color": "#fbfcfd",
          "text-background-opacity": 1 } },
      ],
    });
    state.cy.on("tap", "node", (event) => selectTwin(event.target.id(), { fromGraph: true }));
    state.cy.resize();
    state.cy.fit(undefined, 30);
    if (state.selected) state.cy.getElementById(state.selected).select();
  }
  $("graph").setAttribute("aria-label", `Twin graph: ${n} twins, ${m} relationships. The list below has every twin.`);
  if (state.hits.size) highlight(state.hits);
}

function nodeClasses(twin) {
  const c = (twin.connectionState || "").toLowerCase();
  return c === "connected" ? "connected" : c === "disconnected" ? "disconnected" : "";
}

function renderList() {
  const list = $("twin-list");
  const datalist = $("twin-ids");
  list.replaceChildren();
  datalist.replaceChildren();
  const ids = [...state.twins.keys()].sort();
  for (const id of ids) {
    const twin = state.twins.get(id);
    const label = `${id}, ${shortModel(modelOf(twin))}` + (twin.connectionState ? `, ${twin.connectionState}` : "");
    const button = el("button", { type: "button", "data-twin": id, "aria-label": label, text: id,
      title: label, onclick: () => selectTwin(id) });
    if (id === state.selected) button.setAttribute("aria-current", "true");
    if (state.hits.has(id)) button.classList.add("hit");
    list.append(el("li", {}, button));
    datalist.append(el("option", { value: id }));
  }
  $("twin-count").textContent = `(${ids.length})`;
}

function renderLegend() {
  const legend = $("legend");
  legend.replaceChildren();
  const models = new Map();
  for (const twin of state.twins.values()) models.set(modelOf(twin), (models.get(modelOf(twin)) || 0) + 1);
  for (const [model, count] of [...models.entries()].sort()) {
    const item = el("span", { text: `${shortModel(model)} (${count})` });
    item.style.setProperty("--swatch", colourOf(model));
    legend.append(item);
  }
  legend.append(el("span", { class: "hint", text: "border: green = Connected, dashed grey = Disconnected" }));
}

async function loadGraph() {
  $("graph-note").textContent = "loading the graph…";
  $("graph-note").classList.remove("error");
  try {
    buildGraph(await api("graph"));
  } catch (error) {
    $("graph-note").textContent = `cannot load the graph: ${error.message}`;
    $("graph-note").classList.add("error");
  }
}

// Arrow keys move between the twin buttons (one list, wrapping as the window allows).
$("twin-list").addEventListener("keydown", (event) => {
  const buttons = [...$("twin-list").querySelectorAll("button")];
  const at = buttons.indexOf(document.activeElement);
  if (at < 0) return;
  const step = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1 }[event.key];
  let next = step === undefined ? null : at + step;
  if (event.key === "Home") next = 0;
  if (event.key === "End") next = buttons.length - 1;
  if (next === null) return;
  event.preventDefault();
  buttons[Math.max(0, Math.min(buttons.length - 1, next))].focus();
});

// ---- inspector ----------------------------------------------------------------------------------------------------
async function selectTwin(id, { fromGraph = false } = {}) {
  state.selected = id;
  for (const b of $("twin-list").querySelectorAll("button")) {
    if (b.dataset.twin === id) b.setAttribute("aria-current", "true"); else b.removeAttribute("aria-current");
  }
  if (state.cy) {
    state.cy.$("node:selected").unselect();
    const node = state.cy.getElementById(id);
    if (node.nonempty()) {
      node.select();
      if (!fromGraph) state.cy.animate({ center: { eles: node }, zoom: Math.max(state.cy.zoom(), 1) },
        { duration: 200 });
    }
  }
  activateTab("inspector", false);
  await renderInspector(id);
}

async function renderInspector(id) {
  const box = $("inspector");
  let data;
  try {
    data = await api(`twins/${encodeURIComponent(id)}`);
  } catch (error) {
    box.replaceChildren(el("p", { class: "error", text: `${id}: ${error.message}` }));
    return;
  }
  if (state.selected !== id) return;  // another twin was chosen meanwhile
  const twin = data.twin, meta = twin.$metadata || {};
  const heading = el("h2", { id: "inspector-title", text: twin.$dtId });
  const facts = el("dl", { class: "facts" },
    el("dt", { text: "Model" }), el("dd", { class: "mono", text: meta.$model || "?" }),
    el("dt", { text: "ETag" }), el("dd", { class: "mono", text: twin.$etag || "" }),
    el("dt", { text: "Last update" }), el("dd", { text: meta.$lastUpdateTime || "" }));
  if (twin.connectionState) {
    heading.append(" ", el("span", { class: `badge ${twin.connectionState}`, text: twin.connectionState }));
  }
  const props = el("table", { id: "properties", "aria-label": `Properties of ${twin.$dtId}` },
    el("thead", {}, el("tr", {}, ...["Property", "Value", "Last update", "Source time"].map(
      (t) => el("th", { scope: "col", text: t })))));
  const body = el("tbody");
  for (const name of Object.keys(twin).filter((k) => !k.startsWith("$")).sort()) {
    const m = meta[name] || {};
    body.append(el("tr", { "data-property": name },
      el("th", { scope: "row", text: name }), el("td", { class: "mono", text: show(twin[name]) }),
      el("td", { text: m.lastUpdateTime || "" }), el("td", { text: m.sourceTime || "" })));
  }
  props.append(body);
  const rels = (title, rows, other, label) => {
    const list = el("ul", { "aria-label": title });
    for (const r of rows) {
      const target = r[other];
      list.append(el("li", {}, `${label(r)} `, el("button", { type: "button", text: target,
        "aria-label": `Go to twin ${target}`, onclick: () => selectTwin(target) })));
    }
    if (!rows.length) list.append(el("li", { class: "hint", text: "none" }));
    return [el("h3", { text: `${title} (${rows.length})` }), list];
  };
  const parts = [heading, facts, el("h3", { text: "Properties" }), el("div", { class: "table-wrap" }, props),
    ...rels("Relationships out", data.outgoing, "$targetId", (r) => `${r.$relationshipName} →`),
    ...rels("Relationships in", data.incoming, "$sourceId", (r) => `← ${r.$relationshipName} from`)];
  if (data.model) {
    const contents = (data.model.model && data.model.model.contents) || [];
    const list = el("ul", { "aria-label": "Model contents" });
    for (const c of contents) {
      const type = Array.isArray(c["@type"]) ? c["@type"].join(", ") : c["@type"];
      list.append(el("li", { class: "mono", text: `${c.name}: ${type}` +
        (c.schema ? ` (${typeof c.schema === "string" ? c.schema : c.schema["@type"] || "object"})` : "") }));
    }
    parts.push(el("h3", { text: `Model ${data.model.id}` }), list);
  }
  box.replaceChildren(...parts);
}

// ---- live changes -------------------------------------------------------------------------------------------------
let source = null;
function connectLive() {
  source = new EventSource("/api/events");
  source.addEventListener("change", (message) => onChange(JSON.parse(message.data)));
  source.onerror = () => { $("live-mode").classList.remove("on"); };
  source.onopen = () => refreshInfo();
}

function onChange(change) {
  state.total += 1;
  state.times.push(performance.now());
  $("total").textContent = String(state.total);
  if (state.paused) {
    state.missed += 1;
    $("pause").textContent = `Resume (${state.missed} waiting)`;
    return;
  }
  applyChange(change);
}

function applyChange(change) {
  const id = change.twinId;
  if (change.kind === "twin.create" || change.kind === "twin.delete" || change.kind.startsWith("relationship.")) {
    scheduleReload();
  } else if (change.kind === "twin.update") {
    const twin = state.twins.get(id);
    if (twin) {
      for (const op of change.patch || []) {
        const name = op.path.split("/")[1];
        if (!name || op.path.split("/").length !== 2) continue;
        if (op.op === "remove") delete twin[name]; else twin[name] = op.value;
      }
      if (state.cy) {
        const node = state.cy.getElementById(id);
        node.data(nodeData(twin));
        node.classes(nodeClasses(twin));
      }
    }
  }
  flash(id);
  if (id === state.selected) renderInspector(id).then(() => {
    for (const op of change.patch || []) {
      const row = document.querySelector(`#properties tr[data-property="${CSS.escape(op.path.split("/")[1] || "")}"]`);
      if (row) row.classList.add("flash-row");
    }
  });
}

function flash(id) {
  if (!state.cy || !id) return;
  const node = state.cy.getElementById(id);
  if (node.empty()) return;
  node.addClass("flash");
  setTimeout(() => node.removeClass("flash"), 1200);
}

let reloadTimer = null;
function scheduleReload() {  // a burst of creates reloads the graph once
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(loadGraph, 500);
}

setInterval(() => {
  const now = performance.now();
  state.times = state.times.filter((t) => now - t <= 5000);
  $("rate").textContent = (state.times.length / 5).toFixed(1);
}, 1000);

$("pause").addEventListener("click", () => {
  state.paused = !state.paused;
  $("pause").setAttribute("aria-pressed", String(state.paused));
  if (!state.paused) {
    const missed = state.missed;
    state.missed = 0;
    $("pause").textContent = "Pause";
    if (missed) loadGraph().then(() => state.selected && renderInspector(state.selected));
  } else {
    $("pause").textContent = "Resume";
  }
});

async function refreshInfo() {
  try {
    const info = await api("info");
    $("source").textContent = `ADT ${info.adt}` + (info.host ? ` · host ${info.host}` : "");
    const mode = $("live-mode");
    mode.textContent = info.live === "route" ? "live: event route" : info.live === "poll" ? "live: polling" : "live: off";
    mode.classList.toggle("on", info.live !== "off");
    mode.title = info.pollError ? `last poll failed: ${info.pollError}` : "";
  } catch (error) {
    $("source").textContent = `explorer unreachable: ${error.message}`;
  }
}
setInterval(refreshInfo, 10000);

// ---- query --------------------------------------------------------------------------------------------------------
async function runQuery(more = false) {
  const text = more ? state.lastQuery : $("query").value.trim();
  if (!text) return;
  const status = $("query-status");
  status.className = "";
  status.textContent = "running…";
  try {
    const page = await api("query", { body: { query: text, continuationToken: more ? state.continuation : null } });
    state.lastQuery = text;
    state.continuation = page.continuationToken;
    renderResults(page.value, more);
    const shown = $("query-results").querySelectorAll("tbody tr").length;
    status.textContent = `${shown} result${shown === 1 ? "" : "s"}` + (page.continuationToken ? " (more available)" : "");
    $("more").hidden = !page.continuationToken;
    const hits = more ? new Set([...state.hits, ...page.twinIds]) : new Set(page.twinIds);
    highlight(hits);
  } catch (error) {
    status.className = "error";
    status.textContent = error.message;
  }
}

function renderResults(rows, append) {
  const table = $("query-results");
  let columns = append ? JSON.parse(table.dataset.columns || "[]") : [];
  if (!append) {
    const seen = new Set();
    for (const row of rows) for (const k of Object.keys(row)) if (k !== "$metadata" && k !== "$etag") seen.add(k);
    columns = [...seen].sort((a, b) => (a === "$dtId" ? -1 : b === "$dtId" ? 1 : a.localeCompare(b)));
    table.dataset.columns = JSON.stringify(columns);
    table.replaceChildren(el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", { scope: "col", text: c })))),
      el("tbody"));
  }
  const body = table.querySelector("tbody");
  for (const row of rows) {
    const tr = el("tr");
    for (const c of columns) {
      const value = row[c];
      if (c === "$dtId" && typeof value === "string") {
        tr.append(el("td", {}, el("button", { type: "button", text: value, "aria-label": `Inspect twin ${value}`,
          onclick: () => selectTwin(value) })));
      } else {
        tr.append(el("td", { class: "mono", text: show(value) }));
      }
    }
    body.append(tr);
  }
}

function highlight(ids) {
  state.hits = ids;
  if (state.cy) {
    state.cy.batch(() => {
      state.cy.nodes().removeClass("hit dim");
      if (ids.size) state.cy.nodes().forEach((n) => n.addClass(ids.has(n.id()) ? "hit" : "dim"));
    });
  }
  for (const b of $("twin-list").querySelectorAll("button")) b.classList.toggle("hit", ids.has(b.dataset.twin));
}

$("query-form").addEventListener("submit", (event) => { event.preventDefault(); runQuery(false); });
$("query").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); runQuery(false); }
});
$("more").addEventListener("click", () => runQuery(true));
$("clear-highlight").addEventListener("click", () => highlight(new Set()));

// ---- quarantine and egress ----------------------------------------------------------------------------------------
async function loadQuarantine(message) {
  const status = $("quarantine-status");
  const table = $("quarantine-table");
  try {
    const data = await api("quarantine");
    const head = el("tr", {}, ...["Code", "Field path", "Twin", "Received", "Excerpt", ""].map(
      (t) => el("th", { scope: "col", text: t })));
    const body = el("tbody");
    for (const r of data.value) {
      const paths = (r.problems || []).map((p) => p.path || "(event)").join(", ") || "–";
      const why = (r.problems || []).map((p) => `${p.path}: ${p.message}`).join("\n") || r.message;
      const replay = el("button", { type: "button", text: "Replay", "aria-label": `Replay ${r.code} ${r.recordId}`,
        onclick: () => replayRecords([r.recordId]) });
      if (!r.replayable) { replay.disabled = true; replay.title = "not an ingest record with its event"; }
      body.append(el("tr", { "data-record": r.recordId },
        el("td", {}, el("strong", { text: r.code })),
        el("td", { class: "mono", text: paths, title: why }),
        el("td", { text: r.twinId || r.subject || "–" }),
        el("td", { text: r.receivedAt }),
        el("td", {}, el("details", {}, el("summary", { text: r.message }), el("pre", { text: r.excerpt }))),
        el("td", {}, replay)));
    }
    table.replaceChildren(el("thead", {}, head), body);
    status.className = "";
    status.textContent = (message ? `${message} · ` : "") + `${data.value.length} quarantined event(s)`;
    $("replay-all").disabled = !data.value.some((r) => r.replayable);
  } catch (error) {
    status.className = "error";
    status.textContent = error.message;
  }
}

async function replayRecords(ids) {
  const status = $("quarantine-status");
  status.className = "";
  status.textContent = "replaying…";
  try {
    const summary = await api("quarantine/replay", { body: ids ? { recordIds: ids } : {} });
    await loadQuarantine(summary.line);
  } catch (error) {
    status.className = "error";
    status.textContent = `replay failed: ${error.message}`;
  }
}

$("quarantine-refresh").addEventListener("click", () => loadQuarantine());
$("replay-all").addEventListener("click", () => replayRecords(null));

async function loadEgress() {
  const box = $("egress");
  const status = $("egress-status");
  try {
    const stats = await api("egress");
    const table = (title, counts) => {
      const rows = Object.entries(counts || {}).sort();
      const t = el("table", { "aria-label": title }, el("thead", {}, el("tr", {},
        el("th", { scope: "col", text: title }), el("th", { scope: "col", text: "Count" }))));
      const body = el("tbody");
      for (const [k, v] of rows) body.append(el("tr", {}, el("td", { class: "mono", text: k }), el("td", { text: v })));
      if (!rows.length) body.append(el("tr", {}, el("td", { class: "hint", text: "none" }), el("td")));
      t.append(body);
      return [el("h3", { text: title }), t];
    };
    box.replaceChildren(...table("Output messages per route", stats.outputs), ...table("Event outcomes", stats.outcomes),
      ...table("Quarantine codes", stats.codes), ...table("Invocations per function", stats.invocations));
    status.className = "";
    status.textContent = `${stats.twin_writes || 0} twin writes by the host`;
  } catch (error) {
    status.className = "error";
    status.textContent = error.message;
  }
}
$("egress-refresh").addEventListener("click", loadEgress);

// ---- tabs (WAI-ARIA tabs pattern: arrows move, Home/End, the panel follows) ---------------------------------------
const TABS = ["inspector", "query", "quarantine", "egress"];
function activateTab(name, focus = true) {
  for (const t of TABS) {
    const tab = $(`tab-${t}`), panel = $(`panel-${t}`);
    const on = t === name;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    panel.hidden = !on;
  }
  if (focus) $(`tab-${name}`).focus();
  if (name === "quarantine") loadQuarantine();
  if (name === "egress") loadEgress();
}
for (const t of TABS) {
  const tab = $(`tab-${t}`);
  tab.addEventListener("click", () => activateTab(t));
  tab.addEventListener("keydown", (event) => {
    const at = TABS.indexOf(t);
    const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: TABS.length - 1 }[event.key];
    if (to === undefined) return;
    event.preventDefault();
    activateTab(TABS[(to + TABS.length) % TABS.length]);
  });
}

// ---- search -------------------------------------------------------------------------------------------------------
$("find").addEventListener("submit", (event) => {
  event.preventDefault();
  const wanted = $("search").value.trim();
  if (!wanted) return;
  const exact = state.twins.has(wanted) ? wanted : [...state.twins.keys()].find(
    (id) => id.toLowerCase().includes(wanted.toLowerCase()));
  if (exact) {
    selectTwin(exact);
    $("graph-note").textContent = `found ${exact}`;
  } else {
    $("graph-note").textContent = `no twin matches "${wanted}" in the graph`;
  }
});
$("fit").addEventListener("click", () => state.cy && state.cy.fit(undefined, 20));
$("reload").addEventListener("click", loadGraph);

refreshInfo();
loadGraph();
connectLive();
