"""YAML loading that remembers where every node came from.

PyYAML's constructors forget line numbers and silently keep the last of two
duplicate keys, so we compose the node graph ourselves and build plain Python
data from it, recording the 1-based line of every mapping entry and list item
under its path (a tuple of keys and indexes). :class:`Source` also collects the
problems found while reading the document, so that every check can report
into one list and the caller raises once with all of them.
"""
from __future__ import annotations

import yaml

from orchestrator.errors import Problem

Path = tuple  # of str keys and int list indexes


def format_path(path: Path, data=None) -> str:
    """``("workflows", "wf", "on-success", 0)`` -> ``workflows.wf.on-success[0]``.

    ``data`` tells list indexes from integer mapping keys (a task named ``1``
    is ``tasks.1``); without it every int is taken for an index.
    """
    out = ""
    for part in path:
        is_index = isinstance(data, list) if data is not None else (
            isinstance(part, int) and not isinstance(part, bool))
        if is_index:
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            data = None
    return out


class Source:
    """One document being read: its data, the line of each path, and the problems found."""

    def __init__(self, text: str, file: str | None = None):
        self.file = file
        self.lines: dict[Path, int] = {}
        # (path, message, line); formatted once the data is known (see format_path).
        self.problems: list[tuple[Path, str, int]] = []
        self.data = None
        self.data = self._load(text)

    def line(self, path: Path) -> int:
        """Line of ``path``, or of its nearest ancestor that has one (0 if none)."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 0)

    def report(self, path: Path, message: str, line: int | None = None) -> None:
        where = self.line(path) if line is None else line
        self.problems.append((tuple(path), message, where))

    def sorted_problems(self) -> list[Problem]:
        # Stable sort: problems on one line keep the order the checks found them.
        return [Problem(format_path(path, self.data), message, line, self.file)
                for path, message, line in sorted(self.problems, key=lambda p: p[2])]

    def _load(self, text: str):
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            self.lines[()] = node.start_mark.line + 1
            return self._build(loader, node, ())
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            reason = exc.problem or str(exc)
            if exc.context:
                # The context says where the unfinished construct began, which is
                # usually where the mistake is when the problem is at end of file.
                started = f" (line {exc.context_mark.line + 1})" if exc.context_mark else ""
                reason = f"{exc.context}{started}: {reason}"
            self.report((), f"YAML syntax error: {reason}", mark.line + 1 if mark else 0)
        except yaml.YAMLError as exc:
            self.report((), f"YAML syntax error: {exc}")
        finally:
            loader.dispose()
        return None

    def _build(self, loader, node, path: Path):
        if isinstance(node, yaml.MappingNode):
            return self._build_mapping(loader, node, path)
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, child in enumerate(node.value):
                self.lines.setdefault(path + (index,), child.start_mark.line + 1)
                items.append(self._build(loader, child, path + (index,)))
            return items
        return loader.construct_object(node, deep=True)

    def _build_mapping(self, loader, node, path: Path) -> dict:
        # Duplicates are looked for among the keys written in this mapping only:
        # keys brought in by a `<<` merge may legitimately be overridden.
        seen: dict = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = loader.construct_object(key_node, deep=True)
                if key in seen:
                    self.report(
                        path + (key,),
                        f"duplicate key {key!r} (first defined on line {seen[key]})",
                        key_node.start_mark.line + 1,
                    )
                else:
                    seen[key] = key_node.start_mark.line + 1
        loader.flatten_mapping(node)
        result = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                self.report(path, "mapping keys must be scalars", key_node.start_mark.line + 1)
                continue
            # The key's line, not the value's: that is where a reader looks for a
            # task or a field (a block value may start lines below).
            self.lines[path + (key,)] = key_node.start_mark.line + 1
            result[key] = self._build(loader, value_node, path + (key,))
        return result
