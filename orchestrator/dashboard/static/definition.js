// A workbook (or a workflow) before it runs: its YAML, highlighted, and the
// graph of each of its workflows. Clicking a task shows its line in the YAML.
"use strict";

(() => {
  const {api, q, el, $, time} = Dash;
  const page = document.body.dataset.page;
  const name = document.body.dataset.key;
  window.orchestratorGraphs = {};

  function jump(task) {
    const lines = [...document.querySelectorAll("#yaml .yl")];
    for (const l of lines) l.classList.remove("hit");
    const pattern = new RegExp(`^\\s+["']?${task.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}["']?\\s*:`);
    const hit = lines.find((l) => pattern.test(l.textContent));
    if (!hit) return;
    hit.classList.add("hit");
    const box = $("#yaml");
    box.scrollTop = hit.offsetTop - box.clientHeight / 3;
  }

  async function card(workflow) {
    const graphBox = el("div", {class: "graph small", role: "img",
                                "aria-label": `graph of ${workflow.name}`});
    const mirror = el("ul", {class: "visually-hidden", "aria-label": "Tasks"});
    const inputs = workflow.input.map((p) => (p.required ? p.name : `${p.name}=${JSON.stringify(p.default)}`));
    const section = el("section", {class: "card workflow-card", "data-workflow": workflow.name},
      el("h2", {}, workflow.name),
      el("p", {class: "inputs mono"}, inputs.length ? `input: ${inputs.join(", ")}` : "no input",
         " · ", el("a", {href: `${Dash.root}/${q({workflow_name: workflow.name})}`}, "its executions")),
      graphBox, mirror);
    $("#workflows").append(section);
    const shape = await api(`/v2/workflows/${encodeURIComponent(workflow.name)}/graph`);
    const graph = new Dash.Graph(graphBox, shape, {mirror, height: [120, 560], onSelect: (task) => {
      graph.select(task);
      jump(task);
    }});
    window.orchestratorGraphs[workflow.name] = graph.cy;
  }

  async function load() {
    let text;
    let workflows;
    if (page === "workbook") {
      const book = await api(`/v2/workbooks/${encodeURIComponent(name)}`);
      text = book.definition;
      $("#definition-meta").replaceChildren(
        el("span", {}, `project ${book.project}`), el("span", {}, `updated ${time(book.updated_at)}`),
        ...book.tags.map((t) => el("span", {class: "tag"}, t)));
      workflows = (await api(`/v2/workflows${q({workbook_name: name, limit: 1000, sort_keys: "name"})}`)).workflows;
    } else {
      const flow = await api(`/v2/workflows/${encodeURIComponent(name)}`);
      text = flow.definition;
      Dash.fill($("#definition-meta"),
        el("span", {}, `project ${flow.project}`), el("span", {}, `updated ${time(flow.updated_at)}`),
        flow.workbook_name ? el("span", {}, "in workbook ", el("a", {
          href: `${Dash.root}/workbooks/${encodeURIComponent(flow.workbook_name)}`}, flow.workbook_name)) : null);
      workflows = [flow];
    }
    Dash.yaml(text, $("#yaml"));
    for (const w of workflows) await card(w);
  }

  Dash.start(() => load().catch((e) => Dash.flash(e.message)));
})();
