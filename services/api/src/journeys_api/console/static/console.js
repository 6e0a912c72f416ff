// The console's own script (the only one the Content-Security-Policy lets run besides the
// vendored libraries): draws journey graphs with dagre, and keeps a run's page live.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const NODE_W = 210;
  const NODE_H = 54;

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  function lines(text, width) {
    // Wraps `text` into at most two lines of about `width` characters.
    const words = text.split(/\s+/);
    const out = [""];
    for (const w of words) {
      const last = out.length - 1;
      if ((out[last] + " " + w).trim().length > width && out[last]) {
        if (out.length === 2) { out[1] = out[1].slice(0, width - 1) + "…"; break; }
        out.push(w);
      } else {
        out[last] = (out[last] + " " + w).trim();
      }
    }
    return out;
  }

  function draw(figure) {
    const data = JSON.parse(figure.dataset.graph);
    const canvas = figure.querySelector(".graph-canvas");
    const g = new dagre.graphlib.Graph({ multigraph: true });
    g.setGraph({ rankdir: "TB", nodesep: 28, ranksep: 46, marginx: 12, marginy: 12 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const n of data.nodes) g.setNode(n.id, { width: NODE_W, height: NODE_H, node: n });
    data.edges.forEach((e, i) => {
      g.setEdge(e.from, e.to, { label: e.label, width: e.label ? e.label.length * 7 + 8 : 0, height: e.label ? 16 : 0, labelpos: "c" }, "e" + i);
    });
    dagre.layout(g);
    const size = g.graph();
    const svg = el("svg", { viewBox: `0 0 ${size.width} ${size.height}`, width: size.width, height: size.height, "aria-hidden": "true", focusable: "false" });
    const defs = el("defs", {}, svg);
    const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, defs);
    el("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow-head" }, marker);
    for (const id of g.edges()) {
      const e = g.edge(id);
      const d = e.points.map((p, i) => (i ? "L" : "M") + p.x.toFixed(1) + " " + p.y.toFixed(1)).join(" ");
      el("path", { d, class: "edge", "marker-end": "url(#arrow)" }, svg);
      if (e.label) {
        const t = el("text", { x: e.x, y: e.y + 4, class: "edge-label", "text-anchor": "middle" }, svg);
        t.textContent = e.label;
      }
    }
    const current = (figure.closest("[data-current]") || {}).dataset?.current;
    const invalid = new Set(data.invalid || []);
    for (const id of g.nodes()) {
      const box = g.node(id);
      const n = box.node;
      const group = el("g", { class: `node node-${n.type.toLowerCase()}` + (id === data.start ? " start" : "") + (id === current ? " current" : "") + (invalid.has(id) ? " invalid" : ""), "data-node": id, transform: `translate(${box.x - NODE_W / 2},${box.y - NODE_H / 2})` }, svg);
      el("rect", { width: NODE_W, height: NODE_H, rx: 8 }, group);
      const title = el("text", { x: 10, y: 18, class: "node-id" }, group);
      title.textContent = n.id;
      lines(n.text, 30).forEach((line, i) => {
        const t = el("text", { x: 10, y: 34 + i * 14, class: "node-text" }, group);
        t.textContent = line;
      });
    }
    canvas.replaceChildren(svg);
  }

  function markCurrent(node) {
    document.querySelectorAll(".graph g.node").forEach((g) => {
      g.classList.toggle("current", g.dataset.node === node);
    });
  }

  function live() {
    const timeline = document.getElementById("timeline");
    if (!timeline) return;
    // A reconnect replays the timeline from its start: keep each event once.
    timeline.addEventListener("htmx:sseBeforeMessage", (event) => {
      const seq = /data-seq="(\d+)"/.exec(event.detail.data || "");
      if (seq && timeline.querySelector(`[data-seq="${seq[1]}"]`)) event.preventDefault();
    });
    timeline.addEventListener("htmx:sseOpen", (event) => {
      document.getElementById("live-state").textContent = "live";
      event.detail.source.addEventListener("status", (message) => {
        const state = JSON.parse(message.data);
        const badge = document.getElementById("run-status");
        badge.textContent = state.status;
        badge.className = `status status-${state.status}`;
        const node = document.getElementById("run-node");
        if (node) node.textContent = state.node || "";
        markCurrent(state.node);
        if (["completed", "failed", "cancelled"].includes(state.status)) {
          const cancel = document.getElementById("cancel");
          if (cancel) cancel.remove();
        }
      });
    });
    timeline.addEventListener("htmx:sseClose", () => {
      document.getElementById("live-state").textContent = "ended";
    });
  }

  // A conversation's stream sends the whole list each time; the state says whether it flows.
  function conversation() {
    const list = document.getElementById("conversation");
    if (!list) return;
    const state = document.getElementById("live-state");
    list.addEventListener("htmx:sseOpen", () => { state.textContent = "live"; });
    list.addEventListener("htmx:sseError", () => { state.textContent = "reconnecting"; });
    list.addEventListener("htmx:sseClose", () => { state.textContent = "ended"; });
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("figure.graph").forEach(draw);
    live();
    conversation();
    // A graph htmx swapped in (the editor's preview) is drawn once it is in the page.
    document.body.addEventListener("htmx:afterSettle", () => {
      document.querySelectorAll("figure.graph").forEach((f) => {
        if (!f.querySelector(".graph-canvas svg")) draw(f);
      });
    });
  });
})();

// The imports page: a dropped (or chosen) file is sent as the field `file` of a multipart
// body, with the session's CSRF token in a header; the bar shows the upload, then the
// import's own page follows it.
(function () {
  function send(section, file) {
    const state = document.getElementById("upload-state");
    const bar = document.getElementById("upload-progress");
    const error = document.getElementById("upload-error");
    document.getElementById("upload-name").textContent = file.name;
    state.hidden = false;
    error.textContent = "";
    const body = new FormData();
    body.append("file", file, file.name);
    const request = new XMLHttpRequest();
    request.open("POST", "/console/imports/upload?name=" + encodeURIComponent(file.name));
    request.setRequestHeader("X-CSRF-Token", section.dataset.csrf);
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) bar.value = Math.round((100 * event.loaded) / event.total);
    });
    request.addEventListener("load", () => {
      let answer = {};
      try { answer = JSON.parse(request.responseText); } catch (e) { /* an HTML error page */ }
      if (request.status === 202 && answer.location) {
        window.location.assign(answer.location);
        return;
      }
      const detail = answer.detail;
      error.textContent = "Refused (" + request.status + "): " +
        (Array.isArray(detail) ? detail.map((d) => d.msg).join("; ") : detail || "try again");
    });
    request.addEventListener("error", () => { error.textContent = "The upload failed: try again."; });
    request.send(body);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const section = document.getElementById("upload");
    if (!section) return;
    const zone = document.getElementById("dropzone");
    const input = document.getElementById("file");
    input.addEventListener("change", () => { if (input.files.length) send(section, input.files[0]); });
    zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      if (event.dataTransfer.files.length) send(section, event.dataTransfer.files[0]);
    });
  });
})();

// The analytics page: Chart.js draws what the table beside it lists exactly.
(function () {
  const PALETTE = ["#0b5cad", "#c2410c", "#15803d", "#7c3aed", "#b91c1c", "#0e7490", "#a16207"];

  document.addEventListener("DOMContentLoaded", () => {
    const holder = document.querySelector(".charts[data-chart]");
    if (!holder || typeof Chart === "undefined") return;
    const data = JSON.parse(holder.dataset.chart);
    const common = { responsive: true, maintainAspectRatio: false, animation: false };
    new Chart(document.getElementById("chart-revenue"), {
      type: "bar",
      data: { labels: data.labels, datasets: [{ label: "Revenue", data: data.revenue, backgroundColor: PALETTE[0] }] },
      options: common,
    });
    new Chart(document.getElementById("chart-types"), {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: Object.entries(data.byType).map(([kind, values], i) => ({ label: kind, data: values, backgroundColor: PALETTE[i % PALETTE.length] })),
      },
      options: { ...common, scales: { x: { stacked: true }, y: { stacked: true } } },
    });
    new Chart(document.getElementById("chart-visits"), {
      type: "line",
      data: {
        labels: data.labels,
        datasets: [
          { label: "Appointments", data: data.appointments, borderColor: PALETTE[0], backgroundColor: PALETTE[0] },
          { label: "Bookings", data: data.bookings, borderColor: PALETTE[1], backgroundColor: PALETTE[1] },
        ],
      },
      options: common,
    });
  });
})();
