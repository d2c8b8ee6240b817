"""YAML loading that remembers where every node came from.

PyYAML's constructors forget line numbers and silently keep the last of two
duplicate keys, so we compose the node graph ourselves and build plain Python
data from it, recording the 1-based line of every mapping entry and list item
under its path (a tuple of keys and indexes). :class:`Source` also collects the
problems found while reading the document, so that every check can report
into one list and the caller raises once with all of them.

Documents come from users, so reading one is bounded (see README, "Document
limits"): the text must be UTF-8 (:func:`decode`) without control characters,
and the values it would make are counted while the node graph is composed, an
alias counting as a copy of what it names, so that a small document of nested
aliases ("billion laughs"), a recursive alias or very deep nesting is refused
before anything is built.
"""
from __future__ import annotations

import yaml

from orchestrator.errors import InvalidDefinition, Problem

Path = tuple  # of str keys and int list indexes

# The document limits. README's "Document limits" lists them; keep the two in step.
MAX_DEPTH = 100  # levels of mappings and lists inside each other, aliases expanded
MAX_VALUES = 100_000  # scalars, mappings and lists, each use of an alias counted as a copy

_NOT_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE  # what YAML refuses in a stream
# What constructing a scalar raises when its tag cannot hold its text.
_UNREADABLE = (ValueError, KeyError, TypeError, OverflowError)


class LimitError(yaml.YAMLError):
    """A document is over one of the limits, or its aliases would never end."""

    def __init__(self, message: str, mark=None):
        super().__init__(message)
        self.message, self.mark = message, mark


def decode(raw: bytes, file: str | None = None) -> str:
    """The text of an uploaded document: UTF-8 (a BOM is allowed), else
    InvalidDefinition saying where the first bad byte is."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[:exc.start]
        line = before.count(b"\n") + 1
        column = len(before) - (before.rfind(b"\n") + 1) + 1
        message = (f"the document is not valid UTF-8: byte 0x{raw[exc.start]:02x} at column "
                   f"{column} ({exc.reason}); save it as UTF-8")
        raise InvalidDefinition([Problem("", message, line, file)]) from None


def safe_load(text: str):
    """``yaml.safe_load`` within the document limits: for YAML found inside a
    document (a with-items literal, an inline parameter). Over a limit it
    raises LimitError, a ``yaml.YAMLError``."""
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    except _UNREADABLE as exc:
        raise yaml.YAMLError(f"cannot read a value: {exc}") from None
    finally:
        loader.dispose()


class _Loader(yaml.SafeLoader):
    """A SafeLoader whose composer counts, for every node, how many values and
    levels it would make once its aliases are expanded, and stops as soon as
    the document goes over MAX_VALUES or MAX_DEPTH, or an alias is used inside
    the collection it names (which would expand forever).

    Nothing is expanded to count: a node's size is known when it ends (the
    running count then minus the count when it began), and an alias adds the
    size of the node it names, which ended before.
    """

    def __init__(self, text: str):
        super().__init__(text)
        self._values = 0  # values made so far, aliases expanded
        self._depth = 0  # collections open around the node being composed
        self._open: set = set()  # anchors of the collections being composed
        self._size: dict = {}  # node -> (values, levels) it makes once expanded

    def _count(self, values: int, mark) -> None:
        self._values += values
        if self._values > MAX_VALUES:
            raise LimitError(
                f"the document has more than {MAX_VALUES} values (scalars, mappings and "
                "lists, each use of an alias counted as a copy of what it names)", mark)

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open:
                raise LimitError(f"alias *{event.anchor} is used inside the value it names "
                                 "(a recursive alias, which would never end)", event.start_mark)
            node = super().compose_node(parent, index)  # an undefined alias is an error there
            values, levels = self._size[node]
            if self._depth + levels > MAX_DEPTH:
                raise LimitError(f"alias *{event.anchor} nests mappings and lists more than "
                                 f"{MAX_DEPTH} levels deep", event.start_mark)
            self._count(values, event.start_mark)
            return node
        collection = isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent))
        if collection:
            if self._depth >= MAX_DEPTH:
                raise LimitError(f"mappings and lists are nested more than {MAX_DEPTH} levels "
                                 "deep", event.start_mark)
            self._depth += 1
            if event.anchor is not None:
                self._open.add(event.anchor)
        before = self._values
        self._count(1, event.start_mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            if collection:
                self._depth -= 1
                self._open.discard(event.anchor)
        if collection:
            children = node.value if isinstance(node, yaml.SequenceNode) \
                else [child for pair in node.value for child in pair]
            levels = 1 + max((self._size[child][1] for child in children), default=0)
        else:
            levels = 0
        self._size[node] = (self._values - before, levels)
        return node

    # A definition's data is stored and passed on as JSON: YAML scalars that JSON
    # has no form for are read as their text (dates) or refused (a ValueError,
    # which Source reports on the value's line).
    def _timestamp_as_text(self, node):
        return self.construct_scalar(node)

    def _json_float(self, node):
        value = self.construct_yaml_float(node)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("JSON has no NaN or infinity")
        return value

    def _no_binary(self, node):
        raise ValueError("binary data cannot be kept in a definition (it is JSON data); "
                         "write the base64 text as a string")


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader._timestamp_as_text)
_Loader.add_constructor("tag:yaml.org,2002:float", _Loader._json_float)
_Loader.add_constructor("tag:yaml.org,2002:binary", _Loader._no_binary)


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
        self._unreadable_nodes: set = set()
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
        bad = _NOT_PRINTABLE.search(text)
        if bad:
            self._refuse_character(text, bad.start())
            return None
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            self.lines[()] = node.start_mark.line + 1
            return self._build(loader, node, ())
        except LimitError as exc:
            self.report((), exc.message, exc.mark.line + 1 if exc.mark else 0)
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

    def _refuse_character(self, text: str, index: int) -> None:
        code = ord(text[index])
        kind = ("a control character" if code < 0x20 or 0x7F <= code <= 0x9F
                else "a surrogate" if 0xD800 <= code <= 0xDFFF else "a non-character")
        column = index - (text.rfind("\n", 0, index) + 1) + 1
        self.report((), f"character U+{code:04X} ({kind}) at column {column} is not allowed in "
                        "YAML; the only control characters allowed are tab, line feed and "
                        "carriage return (write others as escapes in a double-quoted string, "
                        'e.g. "\\x01")', text.count("\n", 0, index) + 1)

    def _build(self, loader, node, path: Path):
        if isinstance(node, yaml.MappingNode):
            return self._build_mapping(loader, node, path)
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, child in enumerate(node.value):
                self.lines.setdefault(path + (index,), child.start_mark.line + 1)
                items.append(self._build(loader, child, path + (index,)))
            return items
        return self._scalar(loader, node, path)

    def _scalar(self, loader, node, path: Path):
        if node in self._unreadable_nodes:
            return None
        try:
            return loader.construct_object(node, deep=True)
        except _UNREADABLE as exc:
            self._unreadable(loader, node, path, exc)
            return None

    def _unreadable(self, loader, node, path: Path, exc: Exception) -> None:
        """A value its tag cannot hold (``2020-13-45``, ``!!bool maybe``, an int
        of 5000 digits): one problem per node, however often it is reached."""
        # The constructor leaves the nodes it was in when it failed marked as
        # being built, and would take them for recursive ones next time.
        loader.recursive_objects.clear()
        if node in self._unreadable_nodes:
            return
        self._unreadable_nodes.add(node)
        reason = f"unknown value {exc}" if isinstance(exc, KeyError) else str(exc)
        self.report(path, f"cannot read {node.value[:40]!r} as {node.tag.rsplit(':', 1)[-1]}: "
                          f"{reason}", node.start_mark.line + 1)

    def _build_mapping(self, loader, node, path: Path) -> dict:
        # Duplicates are looked for among the keys written in this mapping only:
        # keys brought in by a `<<` merge may legitimately be overridden.
        seen: dict = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                try:
                    key = loader.construct_object(key_node, deep=True)
                except _UNREADABLE as exc:
                    self._unreadable(loader, key_node, path, exc)
                    continue
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
            if key_node in self._unreadable_nodes:
                continue
            try:
                key = loader.construct_object(key_node, deep=True)
                hash(key)
            except _UNREADABLE as exc:
                if isinstance(key_node, yaml.ScalarNode):  # a merged-in key, say
                    self._unreadable(loader, key_node, path, exc)
                else:
                    loader.recursive_objects.clear()
                    self.report(path, "mapping keys must be scalars",
                                key_node.start_mark.line + 1)
                continue
            # The key's line, not the value's: that is where a reader looks for a
            # task or a field (a block value may start lines below).
            self.lines[path + (key,)] = key_node.start_mark.line + 1
            result[key] = self._build(loader, value_node, path + (key,))
        return result
