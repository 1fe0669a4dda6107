// Trainyard's web UI: one page, no framework, nothing fetched from
// elsewhere. It reads the master's JSON API (/api/v1, docs/api.md): the
// same JSON the CLI prints with -o json.
"use strict";

const $ = (sel, el = document) => el.querySelector(sel);
const esc = (s) =>
  String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const badge = (state) => `<span class="badge s-${esc(state)}">${esc(state)}</span>`;
const main = () => $("#main");

let token = sessionStorage.getItem("ty_token") || "";
const auth = () => (token ? { Authorization: "Bearer " + token } : {});

async function api(path, opts = {}) {
  const r = await fetch("/api/v1" + path, { ...opts, headers: { ...auth(), ...(opts.headers || {}) } });
  const text = await r.text();
  let body = text;
  try { body = JSON.parse(text); } catch (e) { /* plain text */ }
  if (!r.ok) throw new Error(body && body.error ? body.error : `${r.status} ${r.statusText}`);
  return body;
}

function when(iso) {
  if (!iso) return "-";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function duration(a, b) {
  if (!a) return "-";
  const s = ((b ? Date.parse(b) : Date.now()) - Date.parse(a)) / 1000;
  if (s < 60) return s.toFixed(1) + "s";
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

// A view: a loop until the route changes (stop() ends it).
let current = null;
function loop(fn, ms) {
  const v = { stopped: false, stop() { this.stopped = true; if (this.abort) this.abort.abort(); } };
  (async () => {
    while (!v.stopped) {
      try { await fn(v); } catch (e) { if (!v.stopped) showError(e); }
      if (ms && !v.stopped) await new Promise((r) => setTimeout(r, ms));
    }
  })();
  return v;
}

function showError(e) {
  let el = $("#err");
  if (!el) { el = document.createElement("p"); el.id = "err"; el.className = "error"; main().prepend(el); }
  el.textContent = String(e.message || e);
}

// ---- runs ----
function runsView(params) {
  const q = new URLSearchParams(params);
  main().innerHTML = `<h1>Runs</h1>
    <div class="filters">
      <select id="f-state"><option value="">any state</option>${["pending", "running", "succeeded", "failed", "cancelled"]
        .map((s) => `<option${q.get("state") === s ? " selected" : ""}>${s}</option>`).join("")}</select>
      <input id="f-pipeline" placeholder="pipeline" value="${esc(q.get("pipeline") || "")}">
      <input id="f-since" placeholder="since (30m, 2h, 7d)" value="${esc(q.get("since") || "")}">
      <input id="f-limit" placeholder="limit" size="5" value="${esc(q.get("limit") || "100")}">
    </div>
    <table><thead><tr><th>Run</th><th>Pipeline</th><th>State</th><th>Owner</th><th>Created</th><th>Duration</th></tr></thead>
    <tbody id="runs"></tbody></table>`;
  const apply = () => {
    const p = new URLSearchParams();
    for (const k of ["state", "pipeline", "since", "limit"]) {
      const v = $("#f-" + k).value.trim();
      if (v) p.set(k, v);
    }
    if (q.get("schedule")) p.set("schedule", q.get("schedule"));
    location.hash = "#/runs?" + p.toString();
  };
  for (const k of ["state", "pipeline", "since", "limit"]) $("#f-" + k).addEventListener("change", apply);
  return loop(async () => {
    const runs = await api("/runs?" + q.toString());
    $("#runs").innerHTML = runs.length ? runs.map((r) => `<tr data-run="${esc(r.run_id)}">
      <td><a href="#/runs/${encodeURIComponent(r.run_id)}">${esc(r.run_id)}</a></td><td>${esc(r.pipeline)}</td>
      <td>${badge(r.state)}</td><td>${esc(r.owner || "-")}</td><td>${when(r.created_at)}</td>
      <td>${duration(r.started_at, r.finished_at)}</td></tr>`).join("")
      : `<tr><td colspan="6" class="muted">no runs</td></tr>`;
    $("#err")?.remove();
    document.body.dataset.ready = "runs";
  }, 2000);
}

// ---- a run: its DAG, drawn once, its nodes recoloured as tasks move ----
const NODE_W = 160, NODE_H = 28, COL_W = 200, ROW_H = 38;

// Columns by depth (longest path from a root), rows in order within one.
function layout(tasks) {
  const idx = new Map(tasks.map((t, i) => [t.name, i]));
  const depth = new Array(tasks.length).fill(0), indeg = new Array(tasks.length).fill(0);
  const kids = tasks.map(() => []);
  tasks.forEach((t, i) => (t.depends_on || []).forEach((d) => {
    if (idx.has(d)) { kids[idx.get(d)].push(i); indeg[i]++; }
  }));
  const queue = [];
  indeg.forEach((n, i) => { if (!n) queue.push(i); });
  for (let h = 0; h < queue.length; h++) {
    const i = queue[h];
    for (const k of kids[i]) {
      depth[k] = Math.max(depth[k], depth[i] + 1);
      if (--indeg[k] === 0) queue.push(k);
    }
  }
  const rows = [];
  const pos = tasks.map((t, i) => {
    const c = depth[i];
    rows[c] = (rows[c] || 0) + 1;
    return { x: 16 + c * COL_W, y: 16 + (rows[c] - 1) * ROW_H };
  });
  const w = 32 + (rows.length - 1) * COL_W + NODE_W, h = 32 + Math.max(...rows) * ROW_H;
  return { idx, pos, w, h };
}

function drawGraph(tasks) {
  const L = layout(tasks);
  let edges = "", nodes = "";
  tasks.forEach((t, i) => {
    const p = L.pos[i];
    for (const d of t.depends_on || []) {
      if (!L.idx.has(d)) continue;
      const q = L.pos[L.idx.get(d)], x1 = q.x + NODE_W, y1 = q.y + NODE_H / 2, x2 = p.x, y2 = p.y + NODE_H / 2;
      edges += `<path class="edge" d="M${x1},${y1} C${x1 + 24},${y1} ${x2 - 24},${y2} ${x2},${y2}"/>`;
    }
    const label = t.name.length > 21 ? t.name.slice(0, 20) + "…" : t.name;
    nodes += `<g class="node s-${esc(t.state)}" data-task="${esc(t.name)}" transform="translate(${p.x},${p.y})">` +
      `<rect width="${NODE_W}" height="${NODE_H}"/><text x="8" y="18">${esc(label)}</text><title>${esc(t.name)}</title></g>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${L.w}" height="${L.h}">${edges}${nodes}</svg>`;
}

function runView(id) {
  const t0 = performance.now();
  let st = null, sel = null, tab = "log", nodes = new Map();
  main().innerHTML = `<div class="run-head"><h1 id="title">${esc(id)}</h1><span id="head"></span>
    <button class="act" id="cancel" hidden>Cancel run</button></div>
    <div class="cols"><div class="graph" id="graph"></div><div class="panel" id="panel">
    <p class="muted">Select a task in the graph.</p></div></div>`;
  $("#cancel").addEventListener("click", async () => {
    try { await api(`/runs/${encodeURIComponent(id)}/cancel`, { method: "POST" }); } catch (e) { showError(e); }
  });
  $("#graph").addEventListener("click", (ev) => {
    const g = ev.target.closest(".node");
    if (g) select(g.dataset.task);
  });

  function head() {
    $("#head").innerHTML = `${badge(st.state)} <span class="muted">pipeline</span> ${esc(st.pipeline)}
      <span class="muted">owner</span> ${esc(st.owner || "-")} <span class="muted">created</span> ${when(st.created_at)}
      <span class="muted">duration</span> ${duration(st.started_at, st.finished_at)}
      <span class="muted">${st.tasks.filter((t) => ["succeeded", "cached", "skipped"].includes(t.state)).length}/${st.tasks.length} tasks done</span>`;
    $("#cancel").hidden = !(st.state === "pending" || st.state === "running");
  }

  function recolour() {
    for (const t of st.tasks) {
      const g = nodes.get(t.name);
      if (g) g.setAttribute("class", `node s-${t.state}${t.name === sel ? " sel" : ""}`);
    }
  }

  function task(name) { return st.tasks.find((t) => t.name === name); }

  let follow = null, following = false;
  function select(name) {
    sel = name;
    recolour();
    $("#panel").innerHTML = `<div id="detail"></div><div class="tabs">${["log", "metrics", "artifacts"]
      .map((k) => `<button data-tab="${k}"${k === tab ? ' class="on"' : ""}>${k}</button>`).join("")}</div><div id="tab"></div>`;
    for (const b of $("#panel").querySelectorAll("[data-tab]"))
      b.addEventListener("click", () => {
        tab = b.dataset.tab;
        for (const o of $("#panel").querySelectorAll("[data-tab]")) o.classList.toggle("on", o === b);
        showTab();
      });
    detail();
    showTab();
  }

  function detail() {
    const t = task(sel);
    if (!t) return;
    const exit = t.state === "cancelled" ? "cancelled" : t.signal ? `signal ${t.signal}` : t.exit_code ?? "-";
    $("#detail").innerHTML = `<h2>${esc(t.name)} ${badge(t.state)}</h2><div class="kv">
      <div>attempt</div><div>${t.attempt}${t.failures ? `, ${t.failures} failed` : ""}${t.lost ? `, ${t.lost} lost` : ""}</div>
      <div>worker</div><div>${esc(t.worker || "-")}${(t.parts || []).slice(1).map((p) => " + " + esc(p.worker)).join("")}</div>
      <div>started</div><div>${when(t.started_at)}</div><div>duration</div><div>${t.attempt ? duration(t.started_at, t.finished_at) : "-"}</div>
      <div>exit</div><div>${esc(exit)}</div>
      <div>reason</div><div>${esc(t.reason || "-")}</div>
      <div>progress</div><div>${t.progress ? Math.round(t.progress * 100) + "% " + esc(t.progress_text || "") : "-"}</div>
      <div>upstreams</div><div>${esc((t.depends_on || []).join(", ") || "-")}</div></div>`;
  }

  // the selected task changed: its details again; a log not yet begun, its
  // metrics and outputs read again (a log being followed goes on by itself)
  function changed() {
    detail();
    if (tab !== "log" || !following) showTab();
  }

  function showTab() {
    if (follow) { follow.abort(); follow = null; }
    const t = task(sel);
    if (!t) return;
    if (tab === "log") followLog(t);
    else if (tab === "metrics") showMetrics(t);
    else showArtifacts(t);
  }

  // the log followed as server-sent events, read with fetch (it carries the token)
  async function followLog(t) {
    // earlier attempts' logs: each a link that shows it whole
    const earlier = Array.from({ length: Math.max(0, t.attempt - 1) }, (_, k) => k + 1);
    $("#tab").innerHTML = (earlier.length ? `<div class="muted">earlier attempts: ${earlier
      .map((k) => `<a href="" data-attempt="${k}">${k}</a>`).join(" ")} · <a href="" data-attempt="0">latest</a></div>` : "") +
      `<pre class="log" id="log"></pre>`;
    for (const l of $("#tab").querySelectorAll("[data-attempt]"))
      l.addEventListener("click", async (ev) => {
        ev.preventDefault();
        if (follow) { follow.abort(); follow = null; }
        const k = +l.dataset.attempt;
        if (!k) { followLog(task(sel)); return; }
        $("#log").textContent = await api(`/runs/${encodeURIComponent(id)}/tasks/${encodeURIComponent(t.name)}/logs?attempt=${k}`);
      });
    const pre = $("#log"), ctl = new AbortController();
    follow = ctl;
    following = t.attempt > 0;
    if (!following) { pre.textContent = "(not started)"; return; }
    try {
      const r = await fetch(`/api/v1/runs/${encodeURIComponent(id)}/tasks/${encodeURIComponent(t.name)}/logs?follow=1`,
        { headers: auth(), signal: ctl.signal });
      if (!r.ok) throw new Error((await r.json()).error);
      const rd = r.body.getReader(), dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await rd.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const ev = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          let kind = "message", data = [];
          for (const line of ev.split("\n")) {
            if (line.startsWith("event: ")) kind = line.slice(7);
            else if (line.startsWith("data: ")) data.push(line.slice(6));
          }
          const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
          if (kind === "message" && data.length) pre.append(data.join("\n") + "\n");
          else if (kind === "attempt") pre.append(`--- attempt ${data[0]} ---\n`);
          else if (kind === "end") pre.dataset.ended = "1";
          if (stick) pre.scrollTop = pre.scrollHeight;
        }
      }
    } catch (e) {
      if (e.name !== "AbortError") pre.append(`(${e.message})\n`);
    }
  }

  async function showMetrics(t) {
    $("#tab").innerHTML = `<p class="muted">loading…</p>`;
    const series = await api(`/runs/${encodeURIComponent(id)}/metrics?task=${encodeURIComponent(t.name)}`);
    if (!series.length) { $("#tab").innerHTML = `<p class="muted">no metrics</p>`; return; }
    const byName = new Map();
    for (const s of series) { if (!byName.has(s.name)) byName.set(s.name, []); byName.get(s.name).push(s); }
    $("#tab").innerHTML = [...byName].map(([name, ss]) => chart(name, ss)).join("");
  }

  function chart(name, ss) {
    const W = 400, H = 150, P = 34;
    const pts = ss.flatMap((s) => s.points);
    const xs = pts.map((p) => p.step), ys = pts.map((p) => p.value);
    const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    const sx = (x) => P + (x1 > x0 ? ((x - x0) / (x1 - x0)) * (W - P - 8) : (W - P) / 2);
    const sy = (y) => H - 18 - (y1 > y0 ? ((y - y0) / (y1 - y0)) * (H - 30) : (H - 30) / 2);
    const colours = ["#1f78b4", "#d08b12", "#2f8f46", "#c8372d"];
    const lines = ss.map((s, k) => `<polyline class="line" stroke="${colours[k % 4]}" points="${s.points
      .map((p) => `${sx(p.step).toFixed(1)},${sy(p.value).toFixed(1)}`).join(" ")}"><title>attempt ${s.attempt}</title></polyline>`).join("");
    const fmt = (v) => (Math.abs(v) >= 1000 || Math.abs(v) < 0.01) && v !== 0 ? v.toExponential(2) : +v.toFixed(4);
    return `<h2>${esc(name)} <span class="muted">last ${fmt(ys[ys.length - 1])}</span></h2>
      <svg class="chart" data-metric="${esc(name)}" width="${W}" height="${H}">
      <line x1="${P}" y1="${H - 18}" x2="${W - 8}" y2="${H - 18}" stroke="#ccc"/><line x1="${P}" y1="8" x2="${P}" y2="${H - 18}" stroke="#ccc"/>
      <text x="2" y="14">${fmt(y1)}</text><text x="2" y="${H - 20}">${fmt(y0)}</text>
      <text x="${P}" y="${H - 4}">step ${x0}</text><text x="${W - 70}" y="${H - 4}">step ${x1}</text>${lines}</svg>`;
  }

  function showArtifacts(t) {
    const outs = t.outputs || [];
    $("#tab").innerHTML = outs.length ? `<table><thead><tr><th>Name</th><th>Size</th><th>SHA-256</th></tr></thead><tbody>${outs
      .map((a) => `<tr><td><a download href="/api/v1/runs/${encodeURIComponent(id)}/artifacts/${encodeURIComponent(t.name)}/${a.name
        .split("/").map(encodeURIComponent).join("/")}">${esc(a.name)}</a></td><td>${a.size}</td><td title="${esc(a.sha256)}">${esc(a.sha256.slice(0, 12))}</td></tr>`)
      .join("")}</tbody></table>` : `<p class="muted">no outputs</p>`;
  }

  // the first answer draws; then each long-poll (the run's version) recolours
  return loop(async (v) => {
    const wait = st ? `?wait_after=${st.version}` : "?spec=1"; /* the first: with the upstreams */
    const ctl = new AbortController();
    v.abort = ctl;
    const r = await fetch(`/api/v1/runs/${encodeURIComponent(id)}${wait}`, { headers: auth(), signal: ctl.signal });
    const next = await r.json();
    if (!r.ok) throw new Error(next.error);
    const first = !st;
    if (st) next.tasks.forEach((t, i) => { t.depends_on = st.tasks[i]?.depends_on; });
    const was = st && sel ? JSON.stringify(task(sel)) : null;
    st = next;
    if (first) {
      $("#graph").innerHTML = drawGraph(st.tasks);
      for (const g of $("#graph").querySelectorAll(".node")) nodes.set(g.dataset.task, g);
      window.tyGraphMs = performance.now() - t0;
      document.body.dataset.ready = "run";
    }
    head();
    recolour();
    if (sel && JSON.stringify(task(sel)) !== was) changed();
    $("#err")?.remove();
    if (st.state !== "pending" && st.state !== "running") await new Promise((res) => setTimeout(res, 5000));
  }, 0);
}

// ---- workers, pipelines ----
function workersView() {
  main().innerHTML = `<h1>Workers</h1><table><thead><tr><th>Worker</th><th>State</th><th>Host</th><th>CPUs used</th>
    <th>Memory MB used</th><th>GPUs used</th><th>Running</th><th>Labels</th><th>Last seen</th></tr></thead><tbody id="workers"></tbody></table>`;
  return loop(async () => {
    const ws = await api("/workers");
    $("#workers").innerHTML = ws.map((w) => `<tr><td>${esc(w.id)}</td><td>${badge(w.draining && w.state === "up" ? "draining" : w.state)}</td>
      <td>${esc(w.hostname)}</td><td>${w.used_cpus} / ${w.cpus}</td><td>${w.used_mem_mb} / ${w.mem_mb}</td><td>${w.used_gpus} / ${w.gpus}</td>
      <td class="wrap">${(w.attempts || []).map((a) => `<a href="#/runs/${encodeURIComponent(a.run_id)}">${esc(a.run_id)}/${esc(a.task)}#${a.attempt}</a>`)
        .join(" ") || "-"}</td><td>${esc(Object.entries(w.labels).map(([k, v]) => k + "=" + v).join(", "))}</td><td>${when(w.last_seen_at)}</td></tr>`).join("")
      || `<tr><td colspan="9" class="muted">no workers</td></tr>`;
    document.body.dataset.ready = "workers";
  }, 3000);
}

function pipelinesView() {
  main().innerHTML = `<h1>Pipelines</h1><table><thead><tr><th>Pipeline</th><th>Runs</th><th>Succeeded</th><th>Failed</th>
    <th>Active</th><th>Last run</th><th>State</th><th>Created</th></tr></thead><tbody id="pipelines"></tbody></table>`;
  return loop(async () => {
    const ps = await api("/pipelines");
    $("#pipelines").innerHTML = ps.map((p) => `<tr><td><a href="#/runs?pipeline=${encodeURIComponent(p.name)}">${esc(p.name)}</a></td>
      <td>${p.runs}</td><td>${p.succeeded}</td><td>${p.failed}</td><td>${p.active}</td>
      <td>${p.last_run ? `<a href="#/runs/${encodeURIComponent(p.last_run.run_id)}">${esc(p.last_run.run_id)}</a>` : "-"}</td>
      <td>${p.last_run ? badge(p.last_run.state) : ""}</td><td>${p.last_run ? when(p.last_run.created_at) : ""}</td></tr>`).join("")
      || `<tr><td colspan="8" class="muted">no pipelines yet</td></tr>`;
    document.body.dataset.ready = "pipelines";
  }, 3000);
}

function schedulesView() {
  main().innerHTML = `<h1>Schedules</h1><table><thead><tr><th>Schedule</th><th>Pipeline</th><th>Cron</th><th>Zone</th>
    <th>State</th><th>Next fire</th><th>Last run</th><th>Fired</th><th>Missed</th><th>Owner</th></tr></thead><tbody id="schedules"></tbody></table>`;
  return loop(async () => {
    const ss = await api("/schedules");
    $("#schedules").innerHTML = ss.map((s) => `<tr><td><a href="#/runs?schedule=${encodeURIComponent(s.name)}">${esc(s.name)}</a></td>
      <td>${esc(s.pipeline)}</td><td><code>${esc(s.cron)}</code></td><td>${esc(s.tz)}</td><td>${badge(s.paused ? "paused" : "active")}</td>
      <td>${s.next_fires.length ? esc(s.next_fires[0].local) : "-"}</td>
      <td>${s.last_run ? `<a href="#/runs/${encodeURIComponent(s.last_run)}">${esc(s.last_run)}</a>` : "-"}</td>
      <td>${s.fired}</td><td>${s.skipped}</td><td>${esc(s.owner || "-")}</td></tr>`).join("")
      || `<tr><td colspan="10" class="muted">no schedules</td></tr>`;
    document.body.dataset.ready = "schedules";
  }, 5000);
}

function modelsView(name) {
  if (name) {
    main().innerHTML = `<h1>Model ${esc(name)}</h1><table><thead><tr><th>Version</th><th>Aliases</th><th>From run</th><th>Metrics</th>
      <th>Artifact</th><th>Created</th><th>By</th></tr></thead><tbody id="versions"></tbody></table>
      <h2>Alias history</h2><table><thead><tr><th>#</th><th>Alias</th><th>From</th><th>To</th><th>By</th><th>At</th><th>Note</th></tr></thead>
      <tbody id="history"></tbody></table>`;
    return loop(async () => {
      const [vs, hs] = await Promise.all([api(`/models/${encodeURIComponent(name)}`), api(`/models/${encodeURIComponent(name)}/history`)]);
      $("#versions").innerHTML = vs.map((v) => `<tr><td>${v.version}</td><td>${v.aliases.map(badge).join(" ")}</td>
        <td><a href="#/runs/${encodeURIComponent(v.run_id)}">${esc(v.run_id)}</a></td>
        <td class="wrap">${esc(Object.entries(v.metrics).map(([k, x]) => `${k}=${+x.toFixed(4)}`).join(", "))}</td>
        <td><a download href="/api/v1/runs/${encodeURIComponent(v.run_id)}/artifacts/${encodeURIComponent(v.task)}/${v.artifact
          .split("/").map(encodeURIComponent).join("/")}">${esc(v.artifact)}</a></td><td>${when(v.created_at)}</td><td>${esc(v.by)}</td></tr>`).join("");
      $("#history").innerHTML = hs.map((h) => `<tr><td>${h.seq}</td><td>${esc(h.alias)}</td><td>${h.from_version ?? "-"}</td>
        <td>${h.to_version}</td><td>${esc(h.by)}</td><td>${when(h.at)}</td><td class="wrap">${esc(h.note)}</td></tr>`).join("")
        || `<tr><td colspan="7" class="muted">no alias moved yet</td></tr>`;
      document.body.dataset.ready = "model";
    }, 5000);
  }
  main().innerHTML = `<h1>Models</h1><table><thead><tr><th>Model</th><th>Versions</th><th>Aliases</th><th>Created</th></tr></thead>
    <tbody id="models"></tbody></table>`;
  return loop(async () => {
    const ms = await api("/models");
    $("#models").innerHTML = ms.map((m) => `<tr><td><a href="#/models/${encodeURIComponent(m.name)}">${esc(m.name)}</a></td>
      <td>${m.last_version}</td><td>${esc(Object.entries(m.aliases).map(([a, v]) => `${a}=${v}`).join(", ") || "-")}</td>
      <td>${when(m.created_at)}</td></tr>`).join("") || `<tr><td colspan="4" class="muted">no models</td></tr>`;
    document.body.dataset.ready = "models";
  }, 5000);
}

function route() {
  if (current) current.stop();
  delete document.body.dataset.ready;
  const h = location.hash.slice(1) || "/runs";
  const [path, query] = h.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === parts[0]);
  if (parts[0] === "runs" && parts[1]) current = runView(parts[1]);
  else if (parts[0] === "workers") current = workersView();
  else if (parts[0] === "pipelines") current = pipelinesView();
  else if (parts[0] === "schedules") current = schedulesView();
  else if (parts[0] === "models") current = modelsView(parts[1]);
  else current = runsView(query || "");
}

$("#token").value = token;
$("#token").addEventListener("change", (e) => {
  token = e.target.value.trim();
  sessionStorage.setItem("ty_token", token);
  route();
});
window.addEventListener("hashchange", route);
route();
