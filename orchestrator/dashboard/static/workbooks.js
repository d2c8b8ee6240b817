// Workbooks and the workflows outside any workbook, each linked to its page.
"use strict";

(() => {
  const {api, q, el, $, time} = Dash;

  function link(path, name) {
    return el("a", {href: `${Dash.root}/${path}/${encodeURIComponent(name)}`}, name);
  }

  async function load() {
    const [books, flows] = await Promise.all([
      api(`/v2/workbooks${q({limit: 1000, sort_keys: "name"})}`),
      api(`/v2/workflows${q({limit: 1000, sort_keys: "name"})}`)]);
    const members = new Map();
    for (const w of flows.workflows) {
      if (!members.has(w.workbook_name)) members.set(w.workbook_name, []);
      members.get(w.workbook_name).push(w.name);
    }
    const rows = books.workbooks.map((b) => el("tr", {"data-workbook": b.name},
      el("td", {}, link("workbooks", b.name)),
      el("td", {}, (members.get(b.name) || []).map((n) => n.slice(b.name.length + 1)).join(", ")),
      el("td", {}, b.tags.map((t) => el("span", {class: "tag"}, t))),
      el("td", {}, time(b.updated_at))));
    $("#workbooks tbody").replaceChildren(...(rows.length ? rows : [el("tr", {},
      el("td", {colspan: 4, class: "empty"}, "No workbook yet: upload one with "
         + "'orchestrator workbook create FILE' or POST /v2/workbooks."))]));
    const alone = flows.workflows.filter((w) => !w.workbook_name).map((w) => el("tr",
      {"data-workflow": w.name},
      el("td", {}, link("workflows", w.name)),
      el("td", {class: "mono"}, w.input.map((p) => p.name).join(", ")),
      el("td", {}, time(w.updated_at))));
    $("#standalone tbody").replaceChildren(...(alone.length ? alone : [el("tr", {},
      el("td", {colspan: 3, class: "empty"}, "None."))]));
  }

  Dash.start(() => load().catch((e) => Dash.flash(e.message)));
})();
