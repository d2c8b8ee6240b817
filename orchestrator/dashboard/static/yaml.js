// A small YAML highlighter for workbooks: keys, strings, numbers, booleans,
// comments and the workflow language's expressions (<% %> and {{ }}). It
// colours line by line and parses nothing; each line gets an id (L12) so a
// graph node can point at its task's line.
"use strict";

(() => {
  const KEY = /^(\s*(?:-\s+)*)("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s#'"[\]{},&*!|>%@`-][^#]*?|-[^\s#][^#]*?)(\s*:)(?=\s|$)/;
  const VALUE = new RegExp([
    String.raw`(<%.*?%>|\{\{.*?\}\})`,  // 1 expression
    String.raw`("(?:[^"\\]|\\.)*"|'(?:[^']|'')*')`,  // 2 string
    String.raw`((?:^|(?<=\s))#.*$)`,  // 3 comment
    String.raw`((?<![\w.$-])(?:true|false|null|True|False|yes|no|~)(?![\w.-]))`,  // 4 constant
    String.raw`((?<![\w.$-])-?\d+(?:\.\d+)?(?![\w.-]))`,  // 5 number
    String.raw`([[\]{},]|^\s*-(?=\s))`,  // 6 punctuation
  ].join("|"), "g");
  const CLASSES = [null, "x", "s", "c", "b", "n", "p"];

  function tokens(line) {
    const out = [];
    let rest = line;
    const key = KEY.exec(line);
    if (key) {
      out.push([null, key[1]], ["k", key[2]], ["p", key[3]]);
      rest = line.slice(key[0].length);
    }
    let at = 0;
    for (const m of rest.matchAll(VALUE)) {
      if (m.index > at) out.push([null, rest.slice(at, m.index)]);
      const group = m.findIndex((g, i) => i > 0 && g !== undefined);
      out.push([CLASSES[group], m[0]]);
      at = m.index + m[0].length;
    }
    if (at < rest.length) out.push([null, rest.slice(at)]);
    return out;
  }

  Dash.yaml = (text, target) => {
    const lines = text.replace(/\n$/, "").split("\n");
    // Newlines between the lines keep copied text intact.
    target.replaceChildren(...lines.flatMap((line, i) => {
      const span = Dash.el("span", {class: "yl", "data-n": i + 1, id: `L${i + 1}`});
      for (const [cls, t] of tokens(line)) {
        if (t) span.append(cls ? Dash.el("span", {class: cls}, t) : t);
      }
      return [span, "\n"];
    }));
  };
})();
