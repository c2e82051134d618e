// pyagent dashboard: polls the read-only API of `pyagent dashboard` and draws the swarm's map,
// its tasks, the selected task's waterfall and the throughput graphs (uPlot). No framework and
// nothing from another origin: the server's Content-Security-Policy allows only itself.
"use strict";

const POLL_MS = 1000;
const SVG = "http://www.w3.org/2000/svg";
const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
// What the page last drew; the browser test reads it (tests/integration/test_observe.py).
const state = { swarm: null, tasks: [], selected: null, trace: null, metrics: null, polls: 0, error: "" };
window.pyagentDashboard = state;

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function el(tag, attrs = {}, text = "") {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== "") node.textContent = text;
  return node;
}

function ms(value) {
  if (value === null || value === undefined) return "–";
  return value >= 10000 ? `${(value / 1000).toFixed(1)} s` : `${Math.round(value)} ms`;
}

// -- the map ---------------------------------------------------------------------------------
function drawMap(swarm) {
  const svg = document.getElementById("map");
  svg.replaceChildren();
  const width = svg.clientWidth || 600, height = 260;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const pools = swarm.pools, gap = 12;
  const poolWidth = (width - gap * (pools.length + 1)) / Math.max(pools.length, 1);
  const centres = new Map();
  pools.forEach((pool, i) => {
    const x = gap + i * (poolWidth + gap);
    svg.append(el("svg:rect", { class: "pool", x, y: 8, width: poolWidth, height: height - 16, rx: 8 }));
    svg.append(el("svg:text", { class: "pool-name", x: x + 8, y: 26 }, `pool ${pool.name}`));
    const rows = Math.ceil(pool.nodes.length / 3);
    pool.nodes.forEach((node, j) => {
      const col = j % 3, row = Math.floor(j / 3);
      const perRow = Math.min(3, pool.nodes.length - row * 3);
      const cx = x + (poolWidth / (perRow + 1)) * (col + 1);
      const cy = 40 + ((height - 60) / (rows + 1)) * (row + 1);
      centres.set(node.id, { cx, cy, node });
    });
  });
  // The mesh: a line for each pair of members that hold a connection (either side's report
  // will do), bent below the nodes as Raft's replication arcs are bent above them, so that a
  // link between far nodes does not run through the nodes between.
  const drawn = new Set();
  for (const { cx, cy, node } of centres.values()) {
    for (const peer of node.meshPeerIds || []) {
      const other = centres.get(peer);
      const key = [Math.min(node.id, peer), Math.max(node.id, peer)].join("-");
      if (!other || drawn.has(key)) continue;
      drawn.add(key);
      const bend = Math.min(110, Math.hypot(cx - other.cx, cy - other.cy) / 2.5);
      const d = `M ${cx} ${cy} Q ${(cx + other.cx) / 2} ${(cy + other.cy) / 2 + bend} ${other.cx} ${other.cy}`;
      svg.append(el("svg:path", { class: "mesh-link", d, fill: "none", "data-pair": key }));
    }
  }
  const leader = centres.get(swarm.leader);
  if (leader) {
    for (const { cx, cy, node } of centres.values()) {
      if (node.id === swarm.leader || !["Follower", "Learner"].includes(node.role)) continue;
      // An arc, so that a link to a far node does not run through the nodes between.
      const bend = Math.min(60, Math.hypot(cx - leader.cx, cy - leader.cy) / 4);
      const d = `M ${leader.cx} ${leader.cy} Q ${(leader.cx + cx) / 2} ${(leader.cy + cy) / 2 - bend} ${cx} ${cy}`;
      svg.append(el("svg:path", { class: "link", d, fill: "none", "data-from": swarm.leader, "data-to": node.id }));
    }
  }
  for (const { cx, cy, node } of centres.values()) {
    const role = ["Leader", "Follower", "Learner", "Candidate"].includes(node.role) ? node.role : "down";
    const group = el("svg:g", { class: "node", "data-node": node.node, "data-role": node.role });
    const circle = el("svg:circle", { class: role, cx, cy, r: node.voter ? 16 : 12 });
    circle.append(el("svg:title", {}, `${node.node}: ${node.role}, term ${node.term ?? "–"}, commit ${node.commitIndex ?? "–"}` +
      (node.unhealthy ? ` (${node.unhealthy})` : "")));
    group.append(circle);
    group.append(el("svg:text", { class: "node-name", x: cx, y: cy + 30 }, node.node));
    group.append(el("svg:text", { class: "node-meta", x: cx, y: cy + 42 },
      `${node.role}${node.meshPeers !== null ? ` · mesh ${node.meshPeers}` : ""}`));
    svg.append(group);
  }
}

function drawHeader(swarm) {
  document.getElementById("swarm-name").textContent = swarm.swarm;
  const badge = document.getElementById("health");
  badge.textContent = swarm.healthy ? "healthy" : "degraded";
  badge.className = `badge ${swarm.healthy ? "healthy" : "degraded"}`;
  const leader = swarm.pools.flatMap((p) => p.nodes).find((n) => n.id === swarm.leader);
  document.getElementById("leader-line").textContent = leader ? `leader ${leader.node} (term ${leader.term})` : "no leader";
  document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

// -- tasks -----------------------------------------------------------------------------------
function nodeName(id) {
  const node = (state.swarm?.pools || []).flatMap((p) => p.nodes).find((n) => n.id === id);
  return node ? node.node : id ? `#${id}` : "–";
}

function drawTasks(tasks) {
  const body = document.querySelector("#tasks tbody");
  body.replaceChildren(...tasks.map((t) => {
    const row = el("tr", { "data-task": t.id });
    if (t.id === state.selected) row.classList.add("selected");
    row.append(el("td", { title: t.id }, t.id), el("td", {}, t.manifest), el("td", { class: `state ${t.state}` }, t.state),
      el("td", {}, nodeName(t.owner)), el("td", {}, String(t.steps)),
      el("td", {}, t.finishedMs ? ms(t.finishedMs - t.submittedMs) : "–"));
    row.addEventListener("click", () => select(t.id));
    return row;
  }));
  document.getElementById("task-count").textContent = `${tasks.length}`;
}

async function select(id) {
  state.selected = id;
  document.getElementById("trace-title").textContent = id;
  drawTasks(state.tasks);
  await refreshTrace();
}

// -- the waterfall ---------------------------------------------------------------------------
function flatten(task, depth, rows) {
  rows.push({ depth, label: `${task.id} (${task.manifest})`, state: task.state, start: 0 + (task.submittedOffsetMs ?? 0),
    end: task.finishedOffsetMs, kind: "task", owner: task.owner });
  for (const step of task.steps) {
    rows.push({ depth: depth + 1, label: `${step.id} · ${step.kind}${step.attempt > 1 ? ` #${step.attempt}` : ""}`,
      state: step.state, start: step.startedOffsetMs, end: step.finishedOffsetMs, kind: "step", error: step.errorCode });
    if (step.task) flatten(step.task, depth + 2, rows);
  }
  return rows;
}

function drawTrace(trace) {
  const box = document.getElementById("trace");
  const rows = flatten(trace, 0, []);
  const now = Date.now() - trace.submittedMs;
  const span = Math.max(1, ...rows.map((r) => r.end ?? (r.start !== null ? now : 0)));
  box.replaceChildren(...rows.map((r) => {
    const line = el("div", { class: "wf-row", "data-kind": r.kind, "data-state": r.state });
    const label = el("div", { class: "wf-label", title: r.label }, r.label);
    label.style.paddingLeft = `${r.depth * 0.9}rem`;
    const track = el("div", { class: "wf-track" });
    if (r.start !== null && r.start !== undefined) {
      const end = r.end ?? now;
      const bar = el("div", { class: `wf-bar ${r.state}`, title: `${r.state}: ${ms(r.start)} → ${r.end ? ms(r.end) : "now"}` });
      bar.style.left = `${(r.start / span) * 100}%`;
      bar.style.width = `${Math.max(((end - r.start) / span) * 100, 0.3)}%`;
      track.append(bar);
    }
    line.append(label, track, el("div", { class: "wf-ms" }, r.end && r.start !== null ? ms(r.end - r.start) : r.state));
    return line;
  }));
}

async function refreshTrace() {
  if (!state.selected) return;
  const id = state.selected;
  const { trace } = await api(`/api/tasks/${encodeURIComponent(id)}`);
  if (state.selected !== id) return;
  state.trace = trace;
  drawTrace(trace);
}

// -- graphs ----------------------------------------------------------------------------------
const GRAPHS = [
  { key: "commitsPerSecond", title: "Raft commits / s", colour: "#2f6fd6" },
  { key: "commitLatencyMs", title: "commit latency, mean (ms)", colour: "#d99a00" },
  { key: "meshMessagesPerSecond", title: "mesh messages delivered / s", colour: "#2e7d32" },
  { key: "tasksRunning", title: "tasks running (leader's table)", colour: "#0288d1", also: { key: "tasksQueued", label: "queued", colour: "#8a94a3" } },
];
const plots = new Map();

function drawGraphs(metrics) {
  const box = document.getElementById("graphs");
  const { t } = metrics.series;
  for (const graph of GRAPHS) {
    const data = [t, metrics.series[graph.key]];
    const series = [{}, { label: graph.title, stroke: graph.colour, width: 1.5, spanGaps: true }];
    if (graph.also) {
      data.push(metrics.series[graph.also.key]);
      series.push({ label: graph.also.label, stroke: graph.also.colour, width: 1.5 });
    }
    let plot = plots.get(graph.key);
    if (!plot) {
      const holder = el("div", { class: "graph", "data-graph": graph.key });
      box.append(holder);
      plot = new uPlot({ width: Math.max(holder.clientWidth, 400), height: 160, series, legend: { live: false },
        axes: [{}, { size: 50 }] }, data, holder);
      plots.set(graph.key, plot);
    } else {
      plot.setData(data);
    }
  }
}

// -- the loop --------------------------------------------------------------------------------
function showProblem(message) {
  state.error = message;
  const box = document.getElementById("problem");
  box.hidden = !message;
  box.textContent = message;
}

async function poll() {
  // Each part on its own: with no leader the task table cannot be read, but the map still can.
  const [swarm, tasks, metrics] = await Promise.allSettled([api("/api/swarm"), api("/api/tasks"), api("/api/metrics")]);
  const problems = [];
  if (swarm.status === "fulfilled") {
    state.swarm = swarm.value;
    drawHeader(swarm.value);
    drawMap(swarm.value);
  } else problems.push(`swarm: ${swarm.reason.message}`);
  if (tasks.status === "fulfilled") {
    state.tasks = tasks.value.tasks;
    drawTasks(state.tasks);
  } else problems.push(`tasks: ${tasks.reason.message}`);
  if (metrics.status === "fulfilled") {
    state.metrics = metrics.value;
    drawGraphs(metrics.value);
  } else problems.push(`metrics: ${metrics.reason.message}`);
  try {
    await refreshTrace();
  } catch (error) {
    problems.push(`trace: ${error.message}`);
  }
  showProblem(problems.length ? `${problems.join("; ")} (retrying)` : "");
  state.polls += 1;
  setTimeout(poll, POLL_MS);
}

if (!token) showProblem("no token: open the URL that `pyagent dashboard` printed (it ends in #token=…)");
else poll();
