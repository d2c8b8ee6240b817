// The executions list: newest first, filtered by state and workflow, paged with
// the API's markers, refreshed every couple of seconds while "live" is on.
"use strict";

(() => {
  const {api, q, el, $, badge, time, duration, seconds} = Dash;
  const params = new URLSearchParams(window.location.search);
  const LIMIT = Math.min(Math.max(parseInt(params.get("limit"), 10) || 20, 1), 1000);
  const markers = [];  // markers of the pages before the current one (Newer goes back)
  let marker = null;
  let hasOlder = false;

  function readFilters() {
    return {state: $("#filter-state").value, workflow_name: $("#filter-workflow").value.trim()};
  }

  function keepInUrl(filters) {
    const s = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v) s.set(k, v);
    if (params.has("limit")) s.set("limit", LIMIT);
    const text = s.toString();
    window.history.replaceState(null, "", window.location.pathname + (text ? `?${text}` : ""));
  }

  function row(ex) {
    const href = `${Dash.root}/executions/${encodeURIComponent(ex.id)}`;
    const sub = ex.parent_action_execution_id ? el("span", {class: "tag"}, "sub-workflow") : null;
    const tr = el("tr", {class: "clickable", "data-execution": ex.id, "data-state": ex.state},
      el("td", {}, el("a", {href}, ex.workflow_name), sub),
      el("td", {}, badge(ex.state)),
      el("td", {}, time(ex.created_at)),
      el("td", {class: "mono"}, duration(seconds(ex.created_at, ex.finished_at))),
      el("td", {class: "mono", title: ex.id}, ex.id.slice(0, 8)),
      el("td", {}, ex.description || ""));
    tr.addEventListener("click", (event) => {
      if (event.target.closest("a")) return;
      window.location.href = href;
    });
    return tr;
  }

  async function load() {
    const filters = readFilters();
    const page = await api(`/v2/executions${q({
      limit: LIMIT, sort_keys: "created_at", sort_dirs: "desc", marker, ...filters})}`);
    const rows = page.executions.map(row);
    $("#executions tbody").replaceChildren(...(rows.length ? rows : [el("tr", {},
      el("td", {colspan: 6, class: "empty"}, "No executions match."))]));
    hasOlder = Boolean(page.next);
    $("#older").disabled = !hasOlder;
    $("#newer").disabled = markers.length === 0;
    $("#page-info").textContent = `page ${markers.length + 1}`;
  }

  async function workflowNames() {
    const page = await api(`/v2/workflows${q({limit: 1000, sort_keys: "name"})}`);
    $("#workflow-names").replaceChildren(
      ...page.workflows.map((w) => el("option", {value: w.name})));
  }

  Dash.start(() => {
    $("#filter-state").value = params.get("state") || "";
    $("#filter-workflow").value = params.get("workflow_name") || "";
    let poller = null;
    const restart = () => {
      markers.length = 0;
      marker = null;
      keepInUrl(readFilters());
      poller.now();
    };
    $("#filter-state").addEventListener("change", restart);
    $("#filter-workflow").addEventListener("change", restart);
    $("#filters").addEventListener("submit", (event) => { event.preventDefault(); restart(); });
    $("#older").addEventListener("click", () => {
      const last = $("#executions tbody tr[data-execution]:last-child");
      if (!hasOlder || !last) return;
      markers.push(marker);
      marker = last.dataset.execution;
      poller.now();
    });
    $("#newer").addEventListener("click", () => {
      if (!markers.length) return;
      marker = markers.pop();
      poller.now();
    });
    $("#live").addEventListener("change", () => {
      poller.stop();
      if ($("#live").checked) poller = Dash.poll(load, 2000);
    });
    poller = Dash.poll(load, 2000);
    workflowNames().catch((e) => Dash.flash(e.message));
  });
})();
