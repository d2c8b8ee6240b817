"""The Mistral v2 workflow language: YAML text in, validated spec objects out.

    doc = load(text, "deploy.yaml")

returns a :class:`~orchestrator.dsl.spec.Document` or raises
:class:`~orchestrator.errors.InvalidDefinition` listing every problem at once,
each with file, line, YAML path and, where a name was mistyped, a suggestion.
"""
from __future__ import annotations

from orchestrator.actions import registry
from orchestrator.dsl.parser import parse, parse_actions
from orchestrator.dsl.spec import Document
from orchestrator.dsl.validate import Checker
from orchestrator.dsl.yamlsource import Source
from orchestrator.errors import InvalidDefinition

__all__ = ["load", "load_actions"]


def load(text: str, file: str | None = None, *, lookup_action=None,
         lookup_workflow=None) -> Document:
    """Parse and validate a workbook or a standalone workflow document.

    ``lookup_action(name)`` returns the action class for a name the document
    does not define itself, or None (default: the action registry).
    ``lookup_workflow(name)`` returns the WorkflowSpec of a workflow defined
    elsewhere, or None (default: only the document's own workflows exist).
    """
    source = Source(text, file)
    doc, layout = parse(source)
    # Hints come from the registry even with a custom lookup, which usually wraps it.
    Checker(doc, source, layout, lookup_action or registry.find, lookup_workflow,
            registry.names()).run()
    if source.problems:
        raise InvalidDefinition(source.sorted_problems())
    return doc


def load_actions(text: str, file: str | None = None, *, lookup_action=None) -> Document:
    """Parse and validate a standalone ad-hoc action document (``version: '2.0'``
    plus ``name: {base, base-input, input, output, description}`` entries);
    the result has only ``actions``."""
    source = Source(text, file)
    doc, layout = parse_actions(source)
    Checker(doc, source, layout, lookup_action or registry.find, None, registry.names()).run()
    if source.problems:
        raise InvalidDefinition(source.sorted_problems())
    return doc
