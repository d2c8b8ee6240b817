// One execution, live: its graph coloured by task state, the first failing cause,
// a timeline of task durations, the selected task's details, the tasks and the
// event history; pause, resume, cancel and rerun for operators.
//
// Every second it reads the execution and the events after the last one seen;
// only when something happened does it read the report (the tree of tasks with
// their action executions and the root cause).
"use strict";

(() => {
  const {api, q, el, $, badge, time, duration, seconds, json} = Dash;
  const id = document.body.dataset.key;
  const ACTIVE = ["RUNNING", "PAUSED", "IDLE"];
  const TASK_STATES = Dash.STATES.filter((s) => s !== "PAUSED");
  let execution = null;
  let report = null;
  let graph = null;
  let lastEvent = 0;
  let seen = null;  // what the report was read for
  let selected = null;  // {name, id}: a task name, and a task execution when chosen in the list
  let detailsKey = null;
  let poller = null;
  const taskNames = new Map();  // task execution id -> task name

  const tasks = () => (report ? report.execution.tasks : []);

  // When a task's run ended: a task cancelled with its execution may have no end of
  // its own, and then ended with the execution.
  function ended(t) {
    if (t.finished_at) return t.finished_at;
    const active = ["IDLE", "WAITING", "RUNNING", "RUNNING_DELAYED"].includes(t.state);
    if (active && ACTIVE.includes(execution.state)) return null;
    return execution.finished_at || execution.updated_at;
  }

  function latestByName() {
    const out = new Map();
    for (const t of tasks()) out.set(t.name, t);  // the report lists tasks in start order
    return out;
  }

  // -- header, actions, root cause -----------------------------------------------------
  function renderHeader() {
    const ex = execution;
    const name = $("#workflow-name");
    name.replaceChildren(el("a", {href: `${Dash.root}/workflows/${encodeURIComponent(ex.workflow_name)}`},
                            ex.workflow_name));
    const state = $("#execution-state");
    state.dataset.state = ex.state;
    state.textContent = ex.state;
    document.title = `${ex.workflow_name} ${ex.state} · orchestrator`;
    const took = seconds(ex.created_at, ex.finished_at);
    Dash.fill($("#execution-meta"),
      el("span", {class: "mono", title: "execution id"}, ex.id),
      el("span", {}, `started ${time(ex.created_at)}`),
      ex.finished_at ? el("span", {}, `ended ${time(ex.finished_at)}`) : null,
      el("span", {id: "execution-duration"}, `duration ${duration(took)}`),
      ex.description ? el("span", {}, ex.description) : null);
    const actions = $("#execution-actions");
    actions.hidden = !Dash.can("operator");
    $("#pause").disabled = ex.state !== "RUNNING";
    $("#resume").disabled = ex.state !== "PAUSED";
    $("#cancel").disabled = !["RUNNING", "PAUSED"].includes(ex.state);
    $("#execution-input").textContent = json(ex.input);
    $("#execution-output").textContent = json(ex.output);
    $("#execution-info").textContent = ex.state_info || "";
    $("#execution-params").textContent = json(ex.params);
  }

  function renderRootCause() {
    const box = $("#root-cause");
    const cause = report && report.root_cause;
    if (cause) {
      const where = cause.execution_id === id ? null : el("span", {}, " in sub-execution ",
        el("a", {href: `${Dash.root}/executions/${encodeURIComponent(cause.execution_id)}`},
           cause.execution_id.slice(0, 8)));
      const task = cause.execution_id === id
        ? el("a", {href: "#", "data-cause-task": cause.task, onclick: (event) => {
            event.preventDefault();
            select({name: cause.task});
          }}, cause.task)
        : el("span", {"data-cause-task": cause.task}, cause.task);
      Dash.fill(box, el("strong", {}, "First failing cause:"), "task ", task, where,
                          el("span", {class: "why"}, cause.state_info || "(no message)"));
      box.hidden = false;
    } else if (execution.state === "ERROR" && execution.state_info) {
      box.replaceChildren(el("strong", {}, "Failed:"),
                          el("span", {class: "why"}, execution.state_info));
      box.hidden = false;
    } else {
      box.hidden = true;
      box.replaceChildren();
    }
  }

  // -- graph ----------------------------------------------------------------------------
  async function loadGraph() {
    const shape = await api(`/v2/executions/${encodeURIComponent(id)}/graph`);
    graph = new Dash.Graph($("#graph"), shape, {
      onSelect: (name) => select({name}), mirror: $("#graph-states"), height: [320, 640]});
    window.orchestratorGraph = graph.cy;  // for people poking around, and for the tests
    Dash.legend($("#legend"), TASK_STATES);
    const legend = $("#legend");
    for (const on of ["success", "error", "complete"]) {
      legend.append(el("li", {class: `edge ${on}`}, el("i"), on));
    }
    legend.append(el("li", {class: "edge"}, "⬡ join · dashed: guarded"));
  }

  // -- tasks, timeline, details -------------------------------------------------------
  function renderTasks() {
    const rows = tasks().map((t) => {
      const tr = el("tr", {class: "clickable", "data-task": t.name, "data-task-id": t.id,
                           "data-state": t.state,
                           "aria-selected": selected && selected.id === t.id ? "true" : null},
        el("td", {}, t.name, t.type === "WORKFLOW" ? el("span", {class: "tag"}, "workflow") : null),
        el("td", {}, badge(t.state)),
        el("td", {}, time(t.started_at || t.created_at)),
        el("td", {class: "mono"}, t.started_at ? duration(seconds(t.started_at, ended(t))) : ""),
        el("td", {class: "mono"}, String(t.attempt)));
      tr.tabIndex = 0;
      tr.addEventListener("click", () => select({name: t.name, id: t.id}));
      tr.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          select({name: t.name, id: t.id});
        }
      });
      return tr;
    });
    $("#tasks tbody").replaceChildren(...(rows.length ? rows : [el("tr", {},
      el("td", {colspan: 5, class: "empty"}, "No task has started yet."))]));
  }

  function renderTimeline() {
    const box = $("#timeline");
    const list = tasks().filter((t) => t.started_at || t.created_at);
    if (!list.length || !execution) {
      box.replaceChildren(el("p", {class: "empty"}, "No task has started yet."));
      return;
    }
    const t0 = new Date(execution.created_at).getTime();
    const t1 = execution.finished_at ? new Date(execution.finished_at).getTime() : Date.now();
    const span = Math.max(t1 - t0, 1);
    const items = [];
    for (const t of list) {
      const start = new Date(t.started_at || t.created_at).getTime();
      const end = Math.max(ended(t) ? new Date(ended(t)).getTime() : Date.now(), start);
      const left = ((start - t0) / span) * 100;
      const width = ((end - start) / span) * 100;
      const bars = [place(el("div", {class: "state bar", "data-state": t.state,
        title: `${t.name}: ${t.state}, ${duration((end - start) / 1000)}`}), left, width)];
      const created = new Date(t.created_at).getTime();
      if (t.started_at && start - created > 0) {  // waited: a join, wait-before, a delay
        bars.unshift(place(el("div", {class: "state bar wait", "data-state": "WAITING",
          title: `${t.name}: waited ${duration((start - created) / 1000)}`}),
          ((created - t0) / span) * 100, ((start - created) / span) * 100));
      }
      items.push(el("div", {class: "name", title: t.name}, t.name),
                 el("div", {class: "track", "data-task": t.name}, bars),
                 el("div", {class: "took"}, duration((end - start) / 1000)));
    }
    items.push(el("div", {}), el("div", {class: "axis"},
      ...[0, 0.25, 0.5, 0.75, 1].map((f) => el("span", {}, duration((span * f) / 1000)))),
      el("div", {}));
    box.replaceChildren(...items);
  }

  function place(bar, left, width) {
    const from = Math.min(Math.max(left, 0), 100);
    bar.style.left = `${from}%`;
    bar.style.width = `${Math.min(Math.max(width, 0), 100 - from)}%`;
    return bar;
  }

  function findSelected() {
    if (!selected) return null;
    if (selected.id) {
      const byId = tasks().find((t) => t.id === selected.id);
      if (byId) return byId;
    }
    return latestByName().get(selected.name) || null;
  }

  function select(choice) {
    selected = choice;
    if (graph) graph.select(choice.name);
    for (const tr of document.querySelectorAll("#tasks tbody tr[data-task-id]")) {
      const on = choice.id ? tr.dataset.taskId === choice.id : false;
      if (on) tr.setAttribute("aria-selected", "true"); else tr.removeAttribute("aria-selected");
    }
    detailsKey = null;
    renderDetails();
  }

  function field(label, value) {
    return value === null || value === undefined || value === "" ? []
      : [el("dt", {}, label), el("dd", {}, value)];
  }

  function section(title, value) {
    if (value === null || value === undefined) return [];
    if (typeof value === "object" && !Array.isArray(value) && !Object.keys(value).length) return [];
    return [el("h3", {}, title), el("pre", {"data-field": title.toLowerCase()}, json(value))];
  }

  function renderDetails() {
    const box = $("#task-details");
    if (!selected) return;
    const task = findSelected();
    const node = graph ? graph.nodes.get(selected.name) : null;
    const key = JSON.stringify([task, execution && execution.state, selected.name]);
    if (key === detailsKey) return;
    detailsKey = key;
    const heading = el("h2", {}, "Task");
    if (!task) {
      box.replaceChildren(heading, el("h1", {}, selected.name, badge("NOT_STARTED")),
        el("dl", {}, ...field("Action", node && node.action), ...field("Workflow", node && node.workflow),
           ...field("Join", node && node.join !== null ? `${node.join} (${node.join_required} arrivals)` : null)),
        el("p", {class: "placeholder"},
           node && node.kind === "command" ? "An engine command, not a task."
             : "This task has not run in this execution."));
      box.dataset.task = selected.name;
      box.dataset.state = "NOT_STARTED";
      return;
    }
    const actions = task.action_executions || [];
    // The input of the latest run (a rerun runs again): one, or one per with-items item.
    const latest = new Map();
    for (const a of actions) latest.set(a.item_index, a);
    const runs = [...latest.values()];
    const inputs = !runs.length ? null : task.items_total === null ? runs[runs.length - 1].input
      : runs.slice(0, 50).map((a) => ({item: a.item_index, input: a.input}));
    const items = task.items_total !== null ? `${task.items_done}/${task.items_total}` : null;
    const parts = [heading,
      el("h1", {}, task.name, badge(task.state)),
      el("dl", {},
        ...field("Runs", task.type === "WORKFLOW" ? `workflow ${node && node.workflow || ""}`
                          : (actions[0] && actions[0].name) || (node && node.action) || "(no action)"),
        ...field("Attempt", String(task.attempt)),
        ...field("Started", time(task.started_at)),
        ...field("Finished", time(task.finished_at)),
        ...field("Duration", task.started_at ? duration(seconds(task.started_at, ended(task))) : null),
        ...field("Items", items),
        ...field("Join", node && node.join !== null ? `${node.join} (${node.join_required} arrivals)` : null),
        ...field("Action runs", actions.length ? actions.map((a) => `${a.state}×${a.runs}`).join(", ") : null)),
    ];
    if (task.state_info) parts.push(el("div", {class: "task-error", "data-field": "error"}, task.state_info));
    const subs = task.sub_executions || [];
    if (subs.length) {
      parts.push(el("h3", {}, "Sub-executions"), el("ul", {}, ...subs.map((s) => el("li", {},
        el("a", {href: `${Dash.root}/executions/${encodeURIComponent(s.id)}`}, s.workflow_name),
        " ", badge(s.state)))));
    }
    parts.push(...section("Input", inputs), ...section("Published", task.published),
               ...section("Result", task.result));
    if (Dash.can("operator") && task.state === "ERROR"
        && ["ERROR", "RUNNING", "PAUSED"].includes(execution.state)) {
      const rerun = el("button", {type: "button", class: "primary", id: "rerun"}, "Rerun task");
      rerun.addEventListener("click", () => act(rerun, `task ${task.name} rerun`,
        () => api(`/v2/tasks/${encodeURIComponent(task.id)}`,
                  {method: "PUT", body: {state: "RUNNING", reset: true}})));
      const buttons = [rerun];
      if (task.items_total !== null) {
        const failed = el("button", {type: "button", id: "rerun-failed"}, "Rerun failed items");
        failed.addEventListener("click", () => act(failed, `failed items of ${task.name} rerun`,
          () => api(`/v2/tasks/${encodeURIComponent(task.id)}`,
                    {method: "PUT", body: {state: "RUNNING", reset: false}})));
        buttons.push(failed);
      }
      parts.push(el("div", {class: "actions"}, ...buttons));
    }
    Dash.fill(box, parts);
    box.dataset.task = task.name;
    box.dataset.state = task.state;
  }

  // -- events ---------------------------------------------------------------------------
  function eventRow(e) {
    const [scope, state] = e.kind.split(".");
    const name = e.task_id ? (taskNames.get(e.task_id) || (e.data && e.data.name) || "") : "";
    if (e.task_id && e.data && e.data.name) taskNames.set(e.task_id, e.data.name);
    const rest = {...(e.data || {})};
    delete rest.state;
    delete rest.name;
    const text = Object.keys(rest).length ? JSON.stringify(rest) : "";
    return el("tr", {"data-event": e.id, "data-kind": e.kind},
      el("td", {class: "mono"}, String(e.id)),
      el("td", {class: "mono"}, time(e.at, true)),
      el("td", {}, scope, " ", badge(state)),
      el("td", {}, name),
      el("td", {class: "data", title: text}, text.length > 160 ? `${text.slice(0, 159)}…` : text));
  }

  async function loadEvents() {
    let added = 0;
    for (;;) {
      const page = await api(`/v2/executions/${encodeURIComponent(id)}/events${q({after: lastEvent})}`);
      if (!page.events.length) break;
      const scroller = $("#events-scroll");
      const atBottom = scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight - 4;
      $("#events tbody").append(...page.events.map(eventRow));
      lastEvent = page.events[page.events.length - 1].id;
      added += page.events.length;
      if (atBottom) scroller.scrollTop = scroller.scrollHeight;
      if (page.events.length < 1000) break;
    }
    return added;
  }

  // -- the loop -------------------------------------------------------------------------
  async function refresh() {
    try {
      execution = await api(`/v2/executions/${encodeURIComponent(id)}`);
    } catch (e) {
      if (e.status === 404) { poller.stop(); }
      throw e;
    }
    await loadEvents();
    const now = `${execution.state} ${execution.updated_at} ${lastEvent}`;
    if (now !== seen) {
      report = await api(`/v2/executions/${encodeURIComponent(id)}/report${q({max_depth: 1})}`);
      execution = {...report.execution};
      delete execution.tasks;
      seen = now;
      for (const t of tasks()) taskNames.set(t.id, t.name);
      if (graph) graph.update(latestByName());
      renderTasks();
      renderRootCause();
      if (!selected) {
        const cause = report.root_cause;
        if (cause && cause.execution_id === id) select({name: cause.task});
      }
    }
    renderHeader();
    renderTimeline();
    renderDetails();
    document.body.dataset.executionState = execution.state;
  }

  async function act(button, done, call) {
    button.disabled = true;
    try {
      await call();
      Dash.flash(done, "info");
    } catch (e) {
      Dash.flash(e.message);
    } finally {
      button.disabled = false;
      seen = null;
      poller.now();
    }
  }

  function setState(button, body, done) {
    return () => act(button, done, () => api(`/v2/executions/${encodeURIComponent(id)}`,
                                            {method: "PUT", body}));
  }

  Dash.start(async (who) => {
    $("#pause").addEventListener("click", setState($("#pause"), {state: "PAUSED"}, "paused"));
    $("#resume").addEventListener("click", setState($("#resume"), {state: "RUNNING"}, "resumed"));
    const cancel = setState($("#cancel"), {state: "CANCELLED",
                                           state_info: `cancelled from the dashboard by ${who.name}`},
                            "cancelled");
    $("#cancel").addEventListener("click", () => {
      if (window.confirm("Cancel this execution? Its running tasks are cancelled; this cannot be undone.")) cancel();
    });
    try {
      await loadGraph();
    } catch (e) {
      Dash.flash(`the graph could not be drawn: ${e.message}`);
    }
    poller = Dash.poll(refresh, () => (execution && !ACTIVE.includes(execution.state) ? 3000 : 1000));
  });
})();
