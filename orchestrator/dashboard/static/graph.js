// A workflow graph (GET /v2/.../graph) drawn with Cytoscape.js and the dagre
// layout: tasks as boxes, joins as hexagons, engine commands as small ovals,
// transitions as edges labelled success / error / complete (dashed when guarded).
// Node colours follow each node's `state` data; a hidden list mirrors the
// states in the DOM (data-node, data-state) for screen readers and tests.
"use strict";

Dash.Graph = class {
  constructor(container, shape, options) {
    const {onSelect, mirror, height} = options || {};
    this.shape = shape;
    this.mirror = mirror || null;
    this.nodes = new Map(shape.nodes.map((n) => [n.id, n]));
    const elements = [];
    for (const n of shape.nodes) {
      elements.push({group: "nodes", data: {id: n.id, kind: n.kind, join: n.join !== null,
                                            state: "NOT_STARTED", ...this.label(n, null)}});
    }
    shape.edges.forEach((e, i) => {
      elements.push({group: "edges", data: {
        id: `e${i}`, source: e.source, target: e.target, on: e.on, guarded: e.guard !== null,
        label: e.guard ? `${e.on} if ${short(e.guard)}` : e.on}});
    });
    this.cy = cytoscape({
      container, elements, style: this.style(), minZoom: 0.25, maxZoom: 1.25,
      autoungrabify: true, boxSelectionEnabled: false, selectionType: "single",
      layout: {name: "dagre", rankDir: "TB", nodeSep: 36, rankSep: 56, edgeSep: 12,
               padding: 16, fit: true},
    });
    if (height) {  // [min, max]: as tall as the drawing at zoom 1, within those bounds
      const drawn = this.cy.elements().boundingBox().h + 40;
      container.style.height = `${Math.round(Math.min(Math.max(drawn, height[0]), height[1]))}px`;
      this.fit();
    }
    this.cy.on("tap", "node", (event) => onSelect && onSelect(event.target.id()));
    window.addEventListener("resize", () => this.fit());
    this.renderMirror();
  }

  label(node, task) {
    let text = node.id;
    if (node.kind === "task" && node.join !== null) {
      text += `\njoin ${node.join}` + (node.join_required ? ` (${node.join_required})` : "");
    }
    if (task && task.items_total !== null && task.items_total !== undefined) {
      text += `\n${task.items_done}/${task.items_total} items`;
    }
    const longest = Math.max(...text.split("\n").map((l) => l.length));
    const lines = text.split("\n").length;
    const hexagon = node.kind === "task" && node.join !== null;
    return {label: text, w: Math.max(node.kind === "command" ? 56 : 84,
                                     longest * 7.2 + (hexagon ? 44 : 24)),
            h: 18 + lines * 15};
  }

  style() {
    const out = [
      {selector: "node", style: {
        shape: "round-rectangle", label: "data(label)", width: "data(w)", height: "data(h)",
        "text-valign": "center", "text-halign": "center", "text-wrap": "wrap",
        "font-family": "system-ui, sans-serif", "font-size": 12, "border-width": 2}},
      {selector: "node[?join]", style: {shape: "hexagon"}},
      {selector: "node[kind = 'command']", style: {
        shape: "ellipse", "border-style": "dashed", "font-size": 11,
        "background-color": "#ffffff", "border-color": "#64748b", color: "#334155"}},
      {selector: "node[kind = 'command'][id = 'fail']", style: {"border-color": "#dc2626"}},
      {selector: "node[kind = 'command'][id = 'succeed']", style: {"border-color": "#15803d"}},
      {selector: "node[kind = 'command'][id = 'pause']", style: {"border-color": "#d97706"}},
      {selector: "node:selected", style: {
        "border-width": 4, "border-color": "#0f172a", "overlay-opacity": 0}},
      {selector: "edge", style: {
        "curve-style": "bezier", "target-arrow-shape": "triangle", width: 1.6,
        "arrow-scale": 0.9, label: "data(label)", "font-size": 10,
        "font-family": "system-ui, sans-serif", "text-background-color": "#ffffff",
        "text-background-opacity": 0.9, "text-background-padding": 2,
        "text-rotation": "none"}},
      {selector: "edge[?guarded]", style: {"line-style": "dashed"}},
    ];
    for (const state of Dash.STATES) {
      const c = Dash.colors(state);
      out.splice(2, 0, {selector: `node[kind = 'task'][state = '${state}']`, style: {
        "background-color": c.bg, "border-color": c.border, color: c.text}});
    }
    const edgeColors = {success: "#15803d", error: "#dc2626", complete: "#2563eb",
                        skip: "#7c3aed", requires: "#475569"};
    for (const [on, color] of Object.entries(edgeColors)) {
      out.push({selector: `edge[on = '${on}']`, style: {
        "line-color": color, "target-arrow-color": color, color}});
    }
    return out;
  }

  // states: Map task name -> the task (as the API shows it) of its latest run.
  update(states) {
    this.cy.batch(() => {
      for (const [name, node] of this.nodes) {
        const task = states.get(name) || null;
        const ele = this.cy.$id(name);
        ele.data({state: task ? task.state : "NOT_STARTED", ...this.label(node, task)});
      }
    });
    this.renderMirror();
  }

  select(name) {
    this.cy.$(":selected").unselect();
    if (name && this.nodes.has(name)) this.cy.$id(name).select();
  }

  fit() {
    this.cy.resize();
    this.cy.fit(undefined, 16);
  }

  renderMirror() {
    if (!this.mirror) return;
    this.mirror.replaceChildren(...this.cy.nodes().map((n) => Dash.el("li", {
      "data-node": n.id(), "data-kind": n.data("kind"), "data-state": n.data("state"),
      "data-join": n.data("join") ? "true" : "false"}, `${n.id()}: ${n.data("state")}`)));
  }
};

function short(text) {
  const t = String(text).replace(/\s+/g, " ").trim();
  return t.length > 28 ? `${t.slice(0, 27)}…` : t;
}
