// Strata dashboard: reads /dashboard.json, then refreshes every panel from /metrics/{name} and
// the health table from /datasets, without reloading the page. The API key comes from the URL
// fragment (#key=…, never sent to a server), else from this browser's storage, else a form.
"use strict";
(function () {
  const state = { panels: [], health: [], refreshes: 0, errors: [] };
  window.strataDashboard = state;
  const GRAIN = { minute: 60, hour: 3600, day: 86400, week: 7 * 86400, month: 31 * 86400 };
  const colors = ["#2759c4", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#c2255c", "#5c940d"];

  function key() {
    const m = location.hash.match(/key=([^&]+)/);
    if (m) { localStorage.setItem("strataKey", decodeURIComponent(m[1])); }
    return localStorage.getItem("strataKey");
  }

  async function api(path) {
    const r = await fetch(path, { headers: { Authorization: "Bearer " + key() }, cache: "no-store" });
    if (r.status === 401) { askKey(); throw new Error("the API wants a key"); }
    if (!r.ok) { throw new Error(path + ": HTTP " + r.status); }
    return r.json();
  }

  function askKey() {
    const form = document.getElementById("keyform");
    form.hidden = false;
    form.onsubmit = (e) => {
      e.preventDefault();
      localStorage.setItem("strataKey", document.getElementById("key").value);
      location.reload();
    };
  }

  function fmt(v) {
    if (v === null || v === undefined || Number.isNaN(v)) { return "–"; }
    return Math.abs(v) >= 1000 ? Math.round(v).toLocaleString("en-US") : (Math.round(v * 100) / 100).toString();
  }

  // One x value per grain step; one series per split value.
  function toSeries(panel, rows) {
    const xs = [...new Set(rows.map((r) => Date.parse(r[panel.by]) / 1000))].sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const label = (r) => (r[panel.split] === null || r[panel.split] === undefined ? "(none)" : String(r[panel.split]));
    const names = panel.split ? [...new Set(rows.map(label))].sort() : [panel.measure];
    const ys = names.map(() => xs.map(() => null));
    for (const r of rows) {
      const s = panel.split ? names.indexOf(label(r)) : 0;
      ys[s][index.get(Date.parse(r[panel.by]) / 1000)] = Number(r[panel.measure]);
    }
    return { names, data: [xs, ...ys] };
  }

  function makePlot(p, series) {
    const el = p.el.querySelector(".chart");
    el.textContent = "";
    const width = Math.max(320, el.clientWidth || 480);
    const opts = {
      width, height: 220,
      series: [{}].concat(series.names.map((n, i) => ({ label: n, stroke: colors[i % colors.length], width: 2, points: { show: true, size: 4 } }))),
      axes: [{}, { size: 60 }],
      // One point alone: a range of one grain either side, not uPlot's default of years.
      scales: { x: { time: true, range: (u, min, max) => (min === max ? [min - GRAIN[p.by], max + GRAIN[p.by]] : [min, max]) } },
    };
    p.plot = new uPlot(opts, series.data, el);
    p.names = series.names.join("\u0000");
  }

  async function refreshPanel(p) {
    const q = "measures=" + encodeURIComponent(p.measure) + "&by=" + encodeURIComponent(p.by + (p.split ? "," + p.split : ""));
    const path = "/metrics/" + encodeURIComponent(p.metric) + "?";
    // The headline is the measure over everything (right for averages and distinct counts too).
    const [answer, overall] = await Promise.all([api(path + q), api(path + "measures=" + encodeURIComponent(p.measure))]);
    const series = toSeries(p, answer.rows);
    if (!p.plot || p.names !== series.names.join("\u0000")) { makePlot(p, series); } else { p.plot.setData(series.data); }
    const total = overall.rows.length ? Number(overall.rows[0][p.measure]) : null;
    p.total = total;
    p.points = answer.rows.length;
    p.snapshots = answer.snapshots;
    p.el.querySelector(".value").textContent = fmt(total);
    p.el.querySelector(".value").dataset.raw = String(total);
  }

  async function refreshHealth(el) {
    const body = await api("/datasets");
    const rows = body.datasets.filter((d) => d.layer === "silver" || d.layer === "gold");
    state.health = rows.map((d) => ({ name: d.name, rows: d.row_count, last_commit: d.last_commit }));
    const tbody = el.querySelector("tbody");
    tbody.textContent = "";
    for (const d of rows) {
      const tr = document.createElement("tr");
      const failed = (d.quality || []).filter((q) => !q.success).length;
      const age = d.last_commit ? Math.round((Date.now() - Date.parse(d.last_commit)) / 1000) : null;
      for (const [text, num] of [[d.name, false], [d.row_count ?? "–", true], [age === null ? "–" : age + " s", true], [failed ? failed + " failing" : "ok", false]]) {
        const td = document.createElement("td");
        td.textContent = typeof text === "number" ? text.toLocaleString("en-US") : text;
        if (num) { td.className = "num"; }
        tr.appendChild(td);
      }
      tr.dataset.dataset = d.name;
      tbody.appendChild(tr);
    }
  }

  async function tick(health) {
    const status = document.getElementById("status");
    const errors = [];
    await Promise.all(state.panels.map((p) => refreshPanel(p).catch((e) => errors.push(p.title + ": " + e.message))));
    await refreshHealth(health).catch((e) => errors.push("health: " + e.message));
    state.refreshes += 1;
    state.errors = errors;
    status.textContent = errors.length ? errors.join("; ") : "updated " + new Date().toLocaleTimeString();
    status.className = errors.length ? "status error" : "status";
  }

  async function start() {
    if (!key()) { askKey(); document.getElementById("status").textContent = "an API key is needed"; return; }
    const config = await api("/dashboard.json");
    document.getElementById("title").textContent = config.title;
    document.title = config.title;
    const main = document.getElementById("panels");
    for (const panel of config.panels) {
      const el = document.createElement("section");
      el.innerHTML = "<h2><span></span><span class=value>…</span></h2><div class=chart></div>";
      el.querySelector("h2 span").textContent = panel.title;
      el.dataset.metric = panel.metric;
      main.appendChild(el);
      state.panels.push(Object.assign({ el }, panel));
    }
    const health = document.createElement("section");
    health.innerHTML = "<h2><span>Pipeline health: silver and gold tables</span></h2>" +
      "<table><thead><tr><th>table</th><th>rows</th><th>since last commit</th><th>last run's checks</th></tr></thead><tbody></tbody></table>";
    main.appendChild(health);
    await tick(health);
    setInterval(() => tick(health), config.refresh_seconds * 1000);
  }

  start().catch((e) => { document.getElementById("status").textContent = e.message; });
})();
