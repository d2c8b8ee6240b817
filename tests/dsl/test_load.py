"""Valid documents load into the spec objects the engine reads."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.dsl import load
from orchestrator.dsl.spec import (
    ActionSpec,
    Document,
    InputParam,
    RetrySpec,
    Transition,
    WithItemsSpec,
    to_dict,
    workflow_from_dict,
)
from orchestrator.errors import InvalidDefinition

VALID = Path(__file__).parent / "valid"


def load_fixture(name: str, **kwargs) -> Document:
    return load((VALID / name).read_text(), name, **kwargs)


@pytest.fixture(scope="module")
def cloud() -> Document:
    return load_fixture("workbook.yaml")


def test_workbook_names_workflows_and_actions_after_the_workbook(cloud):
    assert cloud.name == "cloud"
    assert list(cloud.workflows) == ["cloud.deploy", "cloud.mount"]
    assert list(cloud.actions) == ["cloud.greet"]
    assert cloud.workflows["cloud.deploy"].name == "cloud.deploy"


def test_ad_hoc_action_keeps_base_input_and_declares_its_input(cloud):
    greet = cloud.actions["cloud.greet"]
    assert greet == ActionSpec(
        name="cloud.greet", base="std.echo", base_input={"output": "hello <% $.who %>"},
        input=(InputParam("who"), InputParam("punctuation", "!", required=False)),
    )


def test_workflow_level_fields_are_kept(cloud):
    wf = cloud.workflows["cloud.deploy"]
    assert wf.type == "direct"
    assert wf.description == "The main deployment."
    assert wf.input == (InputParam("vm_name"), InputParam("size", 10, required=False))
    assert wf.vars == {"api": "http://cloud.example/v1"}
    assert wf.output == {"vm": "<% $.vm_id %>"}
    assert wf.output_on_error == {"reason": "<% $.reason %>"}
    assert list(wf.tasks) == ["create_vm", "create_volume", "attach", "format", "cleanup"]
    assert wf.start_tasks() == ["create_vm"]


def test_a_null_default_still_makes_an_input_optional(cloud):
    assert cloud.workflows["cloud.mount"].input[1] == InputParam("size", None, required=False)


def test_inline_parameters_merge_into_input_and_explicit_input_wins(cloud):
    task = cloud.workflows["cloud.deploy"].tasks["create_vm"]
    assert task.action == "std.http"
    assert task.input == {
        "url": "<% $.api %>/servers",
        "method": "PUT",
        "body": "two words",
        "json": {"name": "<% $.vm_name %>"},
    }
    assert task.publish == {"vm_id": "<% task().result.content.id %>"}
    assert task.line == 34


def test_transitions_read_names_guards_and_commands_with_messages(cloud):
    task = cloud.workflows["cloud.deploy"].tasks["create_vm"]
    assert task.on_success == (
        Transition("create_volume"),
        Transition("attach", "<% $.vm_id != null %>"),
        Transition("fail", "<% $.vm_id = null %>", command="fail", msg="no vm id"),
    )


def test_local_action_and_workflow_names_resolve_inside_the_workbook(cloud):
    tasks = cloud.workflows["cloud.deploy"].tasks
    assert tasks["create_volume"].action == "cloud.greet"
    assert tasks["create_volume"].input == {"who": "volume"}
    assert tasks["format"].action is None
    assert tasks["format"].workflow == "cloud.mount"
    assert tasks["format"].input == {"size": "<% $.size %>", "device": "/dev/vdb"}


def test_task_defaults_apply_where_the_task_does_not_set_the_key(cloud):
    tasks = cloud.workflows["cloud.deploy"].tasks
    default_retry = RetrySpec(3, 1, "<% $.fatal %>")
    assert tasks["create_vm"].retry == default_retry
    assert tasks["create_vm"].timeout == 30
    assert tasks["create_volume"].timeout == 60
    assert tasks["create_volume"].retry == RetrySpec("<% $.retries %>", 2)
    assert tasks["create_vm"].on_error == (Transition("cleanup"),)


def test_a_task_own_clause_replaces_the_default_one_as_in_mistral(cloud):
    cleanup = cloud.workflows["cloud.deploy"].tasks["cleanup"]
    assert cleanup.on_error == (Transition("noop", command="noop"),)


def test_default_transitions_never_lead_a_task_back_to_itself():
    doc = load("""
version: '2.0'
wf:
  task-defaults:
    on-error: [handle]
  tasks:
    work: {}
    handle: {}
""")
    tasks = doc.workflows["wf"].tasks
    assert tasks["work"].on_error == (Transition("handle"),)
    assert tasks["handle"].on_error == ()


def test_join_policies_and_advanced_publish(cloud):
    attach = cloud.workflows["cloud.deploy"].tasks["attach"]
    assert attach.join == "all"
    assert attach.wait_before == 1
    assert attach.pause_before == "<% $.careful %>"
    assert attach.action == "std.noop"
    assert attach.on_complete == (Transition("format"),)
    # on-complete's publish happens whichever way the task ends.
    assert attach.publish == {"attached": True}
    assert attach.publish_on_error == {"attached": True}


def test_with_items_zips_expressions_and_literal_lists(cloud):
    fmt = cloud.workflows["cloud.deploy"].tasks["format"]
    assert fmt.with_items == WithItemsSpec(("host", "port"), ("<% $.hosts %>", [22, 2222]))
    assert (fmt.concurrency, fmt.keep_result, fmt.safe_rerun) == (2, False, True)
    assert fmt.on_success == (Transition("succeed", command="succeed"),)


def test_specs_survive_the_json_round_trip(cloud):
    for wf in cloud.workflows.values():
        assert workflow_from_dict(to_dict(wf)) == wf


@pytest.fixture(scope="module")
def standalone() -> Document:
    return load_fixture("standalone.yaml")


def test_standalone_document_keeps_names_as_written(standalone):
    assert standalone.name is None
    assert list(standalone.workflows) == ["provision", "teardown"]
    assert standalone.actions == {}


def test_reverse_workflow_adds_default_requires_except_to_the_task_itself(standalone):
    tasks = standalone.workflows["provision"].tasks
    assert standalone.workflows["provision"].type == "reverse"
    assert tasks["network"].requires == ()
    assert tasks["disk"].requires == ("network",)
    assert tasks["boot"].requires == ("disk", "network")


def test_expression_action_names_are_kept_for_run_time(standalone):
    assert standalone.workflows["provision"].tasks["boot"].action == "<% $.boot_action %>"
    assert standalone.workflows["provision"].tasks["disk"].input == {"seconds": 0}


def test_a_task_named_like_a_command_overrides_the_command(standalone):
    first = standalone.workflows["teardown"].tasks["first"]
    assert first.on_success == (Transition("pause"), Transition("fail"))
    assert first.on_error == (
        Transition("fail", "<% $.bad %>"),
        Transition("succeed", command="succeed", msg="<% $.why %>"),
    )


def test_lookup_workflow_finds_workflows_defined_elsewhere(standalone):
    text = """
version: '2.0'
main:
  tasks:
    go:
      workflow: teardown what=all
"""
    with pytest.raises(InvalidDefinition, match="unknown workflow 'teardown'"):
        load(text)
    doc = load(text, lookup_workflow={"teardown": standalone.workflows["teardown"]}.get)
    assert doc.workflows["main"].tasks["go"].workflow == "teardown"


def test_lookup_action_replaces_the_registry():
    class Deploy:
        def __init__(self, target, dry_run=False):
            pass

    text = """
version: '2.0'
wf:
  tasks:
    go:
      action: acme.deploy target=prod
"""
    with pytest.raises(InvalidDefinition, match="unknown action 'acme.deploy'"):
        load(text)
    doc = load(text, lookup_action={"acme.deploy": Deploy}.get)
    assert doc.workflows["wf"].tasks["go"].input == {"target": "prod"}
