"""The OpenAPI 3.1 document of the REST API v2, as data, served at
``GET /v2/openapi.json`` (no token needed).

It is kept true by the tests: every response of the API tests is validated
against it (``tests/api/conformance.py``) and ``tests/api/test_openapi.py``
checks that it names exactly the routes of the app. Objects whose fields are
fixed say ``additionalProperties: false``, so a field the code adds without
documenting it fails a test.
"""
from __future__ import annotations

from flask import Blueprint

from orchestrator.api.io import MAX_INT, MAX_LIMIT, SORT_KEYS
from orchestrator.cron import MISSED as MISSED_POLICIES
from orchestrator.engine.states import ActionState, TaskState, WorkflowState

bp = Blueprint("openapi", __name__)

JSON = "application/json"
YAML_TYPES = ("text/plain", "application/x-yaml")

# -- schema pieces -------------------------------------------------------------

ANY: dict = {}  # any JSON value, null included
STR = {"type": "string"}
STR_OR_NULL = {"type": ["string", "null"]}
COUNT = {"type": "integer", "minimum": 0}
COUNT_OR_NULL = {"type": ["integer", "null"], "minimum": 0}
OBJECT = {"type": "object"}
TIME = {"type": "string", "format": "date-time"}
TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
MISSED = {"type": "string", "enum": list(MISSED_POLICIES),
          "description": "fire times missed while down: skip, once or all"}
# A name the server keeps: not empty, not only spaces (400).
NAME = {"type": "string", "minLength": 1, "pattern": r"\S"}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def array(items: dict) -> dict:
    return {"type": "array", "items": items}


def enum(values) -> dict:
    return {"type": "string", "enum": [str(v) for v in values]}


def closed(properties: dict, optional: tuple[str, ...] = ()) -> dict:
    """An object with exactly these fields; all required except ``optional``."""
    return {"type": "object", "properties": properties,
            "required": [k for k in properties if k not in optional],
            "additionalProperties": False}


def request(properties: dict, optional: tuple[str, ...] = ()) -> dict:
    """A request body of exactly these fields. An optional field may also be null,
    which the API reads as not sent (as Mistral's clients send them)."""
    return closed({k: {"anyOf": [v, {"type": "null"}]} if k in optional else v
                   for k, v in properties.items()}, optional)


def list_response(plural: str, item: str) -> dict:
    """``{"<plural>": [...], "next": url}``; ``next`` only when there may be more."""
    return closed({plural: array(ref(item)),
                   "next": {"type": "string", "format": "uri",
                            "description": "URL of the next page"}},
                  optional=("next",))


WORKBOOK = {
    "id": STR, "name": STR, "definition": STR, "tags": array(STR), "project": STR,
    "created_at": TIME, "updated_at": TIME,
}
WORKFLOW = {
    "id": STR, "name": STR, "workbook_name": STR_OR_NULL, "definition": STR,
    "input": array(closed({"name": STR, "default": ANY, "required": {"type": "boolean"}},
                          optional=("default",))),
    "project": STR, "created_at": TIME, "updated_at": TIME,
}
ACTION = {
    "id": STR, "name": STR, "workbook_name": STR_OR_NULL,
    "definition": STR_OR_NULL,  # system actions have no YAML definition
    "is_system": {"type": "boolean"},
    "input": {"type": "string", "description": "parameter names, e.g. 'host, port=22'"},
    "description": STR_OR_NULL, "created_at": TIME_OR_NULL, "updated_at": TIME_OR_NULL,
}
EXECUTION = {
    "id": STR, "workflow_name": STR, "description": STR, "state": enum(WorkflowState),
    "state_info": STR_OR_NULL, "input": OBJECT, "output": ANY, "params": OBJECT,
    "project": STR, "root_execution_id": STR_OR_NULL,
    "parent_action_execution_id": STR_OR_NULL,
    "created_at": TIME, "updated_at": TIME, "finished_at": TIME_OR_NULL,
}
TASK = {
    "id": STR, "name": STR, "workflow_execution_id": STR, "workflow_name": STR,
    "state": enum(TaskState), "state_info": STR_OR_NULL, "result": ANY,
    "published": {"type": ["object", "null"]}, "type": enum(("ACTION", "WORKFLOW")),
    # null when the task is not a with-items task
    "items_total": COUNT_OR_NULL, "items_done": COUNT_OR_NULL, "attempt": COUNT,
    "created_at": TIME, "started_at": TIME_OR_NULL, "finished_at": TIME_OR_NULL,
}
ACTION_EXECUTION = {
    "id": STR, "name": STR, "task_execution_id": STR, "workflow_execution_id": STR,
    "item_index": COUNT, "state": enum(ActionState), "state_info": STR_OR_NULL,
    "input": ANY, "output": ANY, "external_ref": ANY, "runs": COUNT,
    "created_at": TIME, "updated_at": TIME,
}
ENVIRONMENT = {
    "id": STR, "name": STR, "description": STR, "variables": OBJECT,
    "secrets": array(STR), "project": STR, "created_at": TIME, "updated_at": TIME,
}
CRON_TRIGGER = {
    "id": STR, "name": STR, "pattern": STR, "timezone": STR, "workflow_name": STR,
    "workflow_input": OBJECT, "workflow_params": OBJECT,
    "first_execution_time": TIME_OR_NULL,
    "remaining_executions": COUNT_OR_NULL,
    "next_execution_time": TIME_OR_NULL,  # null: it will not fire again
    "missed": MISSED, "project": STR, "created_at": TIME,
}
EVENT = {"id": {"type": "integer"}, "at": TIME, "kind": STR, "task_id": STR_OR_NULL,
         "data": ANY}

SCHEMAS = {
    "Error": closed({
        "error": {"type": "string", "description": "the error class, e.g. NotFound"},
        "message": STR,
        "problems": array(closed({"path": STR, "line": COUNT, "message": STR})),
    }, optional=("problems",)),
    "Validation": {"oneOf": [
        closed({"valid": {"const": True}}),
        closed({"valid": {"const": False}, "error": STR, "problems": array(closed(
            {"path": STR, "line": COUNT, "message": STR}))}, optional=("problems",)),
    ]},
    "Workbook": closed(WORKBOOK),
    "Workflow": closed(WORKFLOW),
    "Action": closed(ACTION),
    "Execution": closed(EXECUTION),
    "Task": closed(TASK),
    "ActionExecution": closed(ACTION_EXECUTION),
    "Environment": closed(ENVIRONMENT),
    "CronTrigger": closed(CRON_TRIGGER),
    "Event": closed(EVENT),
    "Report": closed({
        "root_cause": {"oneOf": [
            {"type": "null"},
            closed({"task": STR, "execution_id": STR, "state_info": STR_OR_NULL}),
        ]},
        "execution": ref("ReportExecution"),
        "statistics": {"type": "object", "properties": {"total_tasks": COUNT},
                       "required": ["total_tasks"], "additionalProperties": COUNT},
    }),
    "ReportExecution": closed({**EXECUTION, "tasks": array(ref("ReportTask"))}),
    "ReportTask": closed({**TASK, "action_executions": array(ref("ActionExecution")),
                          "sub_executions": array(ref("ReportExecution"))}),
    # Request bodies: the API refuses fields it does not know (400), except in
    # EnvironmentWrite.
    "ExecutionCreate": request({
        "workflow_name": STR, "input": OBJECT, "description": STR,
        "id": {"type": "string", "format": "uuid",
               "pattern": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                          "[0-9a-fA-F]{12}$",
               "description": "client-made id, a UUID; using it again returns that "
                              "execution (200)"},
        "params": request({
            "env": {"type": ["object", "string"],
                    "description": "variables, or the name of an environment"},
            "task_name": {"type": "string", "description": "reverse workflows: the target"},
            "secrets": {**array(STR), "description": "env variables shown as ***"},
        }, optional=("env", "task_name", "secrets")),
    }, optional=("input", "description", "id", "params")),
    "ExecutionUpdate": {**request({
        "state": enum(("PAUSED", "RUNNING", "CANCELLED", "ERROR", "SUCCESS")),
        "state_info": {"type": "string", "description": "with CANCELLED, ERROR or SUCCESS"},
        "description": STR,
    }, optional=("state", "state_info", "description")), "minProperties": 1},
    "TaskUpdate": request({
        "state": enum(("RUNNING", "SKIPPED")),
        "reset": {"type": "boolean", "description": "with RUNNING (a rerun), required: true "
                                                    "reruns all, false only failed items"},
    }, optional=("reset",)),
    "ActionExecutionUpdate": request({"state": enum(("SUCCESS", "ERROR", "CANCELLED")),
                                     "output": ANY}, optional=("output",)),
    "EnvironmentWrite": {"type": "object", "required": ["name"], "properties": {
        "name": NAME, **{k: {"anyOf": [v, {"type": "null"}]} for k, v in {
            "description": STR, "variables": OBJECT,
            "secrets": {**array(STR), "description": "variable names shown as ***"}}.items()}}},
    "CronTriggerCreate": request({
        "name": NAME,
        "pattern": {"type": "string", "description": (
            "cron pattern: 5 fields (minute hour day month weekday), 6 with seconds first, "
            "or an alias such as @hourly; one that cannot be read, or never matches, is a "
            "400 saying why")},
        "workflow_name": STR, "workflow_input": OBJECT, "workflow_params": OBJECT,
        "first_execution_time": {**TIME, "description": "in the future (else 400)"},
        "remaining_executions": {"type": ["integer", "null"], "minimum": 1,
                                 "maximum": MAX_INT},
        "timezone": {"type": "string", "default": "UTC",
                     "description": "an IANA time zone name (else 400)"},
        "missed": {**MISSED, "default": "skip"},
    }, optional=("workflow_input", "workflow_params", "first_execution_time",
                 "remaining_executions", "timezone", "missed")),
}

ERRORS = {
    400: ("BadRequest", "bad input: the message names the bad value"),
    401: ("Unauthorized", "no token, or a token that is not valid"),
    403: ("Forbidden", "the token's role does not allow this"),
    404: ("NotFound", "no such object in the token's project"),
    409: ("Conflict", "not allowed in the object's current state, or the name exists"),
    413: ("TooLarge", "the request body is too large"),
}

# -- operations ----------------------------------------------------------------


def query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def path_param(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": STR}


def comma_list(words) -> str:
    """The pattern of ``a, b``: one or more of ``words``, spaces around each allowed."""
    one = "(" + "|".join(words) + ")"
    return f"^ *{one} *(, *{one} *)*$"


def list_params(plural: str) -> list[dict]:
    """The paging and sorting parameters of a list; a value outside them is a 400."""
    keys = SORT_KEYS[plural]
    return [
        query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100},
              f"page size (at most {MAX_LIMIT})"),
        query("marker", STR, "id of the last item of the previous page (404 when it is not "
                             "an item of this list)"),
        query("sort_keys", {"type": "string", "pattern": comma_list(keys)},
              f"comma list of fields, of: {', '.join(keys)}"),
        query("sort_dirs", {"type": "string", "pattern": comma_list(("asc", "desc"))},
              "comma list of asc|desc, one per sort key at most (default asc; the last "
              "one given goes on for the keys after it)"),
    ]


def json_content(schema: dict) -> dict:
    return {JSON: {"schema": schema}}


def op(op_id: str, summary: str, ok: dict, *, errors=(), body: dict | None = None,
       params=(), public: bool = False, any_role: bool = False,
       body_errors=(400, 413), body_required: bool = True) -> dict:
    """One operation. ``ok`` maps a success status to its schema (None: no body).
    401 is added unless ``public``, 403 unless also ``any_role`` (every role may),
    ``body_errors`` when it takes a body."""
    responses: dict = {}
    for status, schema in ok.items():
        responses[str(status)] = ({"description": "no content"} if schema is None else
                                  {"description": "success", "content": json_content(schema)})
    codes = set(errors) | (set(body_errors) if body else set())
    if not public:
        codes |= {401} if any_role else {401, 403}
    for status in sorted(codes):
        responses[str(status)] = {"$ref": f"#/components/responses/{ERRORS[status][0]}"}
    out = {"operationId": op_id, "summary": summary, "responses": responses}
    if params:
        out["parameters"] = list(params)
    if body:
        out["requestBody"] = {"required": body_required, "content": body}
    if public:
        out["security"] = []
    return out


# Examples of request bodies, each working with the others: the workbook defines
# the workflow the execution and the trigger start, with the environment's variables.
EXAMPLES = {
    "workbooks": """version: '2.0'
name: example
workflows:
  hello:
    input:
      - who: world
    tasks:
      greet:
        action: std.echo output="hello <% $.who %> in <% env().region %>"
        publish:
          greeting: <% task().result %>
    output:
      greeting: <% $.greeting %>
""",
    "workflows": """version: '2.0'
ping:
  tasks:
    one:
      action: std.noop
""",
    "actions": """version: '2.0'
shout:
  base: std.echo
  base-input:
    output: <% $.text %>!
  input: [text]
""",
    "EnvironmentWrite": {"name": "staging", "description": "the staging cloud",
                         "variables": {"region": "eu-1", "password": "s3cret"},
                         "secrets": ["password"]},
    "ExecutionCreate": {"workflow_name": "example.hello", "input": {"who": "team"},
                        "params": {"env": "staging"}},
    "CronTriggerCreate": {"name": "nightly", "pattern": "0 3 * * *",
                          "workflow_name": "example.hello", "workflow_input": {"who": "cron"},
                          "workflow_params": {"env": "staging"}, "timezone": "Europe/Paris"},
}


def yaml_body(plural: str, validate: bool = False) -> dict:
    """A YAML document as the body. Saving one needs a document (an empty or blank
    body is a 400); validating answers any body with ``valid`` true or false."""
    schema = ({"type": "string", "description": "YAML definition (any text: the answer says "
                                                "whether it is valid)"} if validate else
              {"type": "string", "minLength": 1, "pattern": r"\S",
               "description": "YAML definition, UTF-8 (a body that is not one is a 400)"})
    return {t: {"schema": schema, "example": EXAMPLES[plural]} for t in YAML_TYPES}


def json_body(name: str) -> dict:
    out = json_content(ref(name))
    if name in EXAMPLES:
        out[JSON]["example"] = EXAMPLES[name]
    return out


def list_op(op_id: str, plural: str, item: str, filters=()) -> dict:
    """A paged list: 400 for a bad limit, sort or filter, 404 for a marker not in the list."""
    return op(op_id, f"list {plural.replace('_', ' ')}", {200: ref(f"{item}List")},
              params=list_params(plural) + list(filters), errors=(400, 404))


def definition_paths(plural: str, item: str, single: bool, delete_errors, filters=()) -> dict:
    """Workbooks, workflows and actions: YAML documents, keyed by name."""
    written = ref(item) if single else list_response(plural, item)
    noun = plural.capitalize()
    return {
        f"/v2/{plural}": {
            "get": list_op(f"list{noun}", plural, item, filters),
            "post": op(f"create{noun}", f"upload new {plural}", {201: written},
                       body=yaml_body(plural), errors=(409,)),
            "put": op(f"update{noun}", f"replace {plural} (the names inside identify them)",
                      {200: written}, body=yaml_body(plural), errors=(404, 409)),
        },
        f"/v2/{plural}/{{name}}": {
            "parameters": [path_param("name")],
            "get": op(f"get{item}", f"one {item.lower()}", {200: ref(item)}, errors=(404,)),
            "delete": op(f"delete{item}", f"delete a {item.lower()}", {204: None},
                         errors=delete_errors),
        },
        f"/v2/{plural}/validate": {
            "post": op(f"validate{noun}", f"check a {item.lower()} document without saving it",
                       {200: ref("Validation")}, body=yaml_body(plural, validate=True),
                       any_role=True,
                       body_required=False,
                       body_errors=(413,)),  # a bad document is {"valid": false}
        },
    }


def keyed_paths(plural: str, item: str, write: str, create_errors, update: bool,
                filters=()) -> dict:
    """Environments and cron triggers: JSON bodies, keyed by name."""
    noun = "".join(w.capitalize() for w in plural.split("_"))
    collection = {
        "get": list_op(f"list{noun}", plural, item, filters),
        "post": op(f"create{item}", f"create a {item}", {201: ref(item)},
                   body=json_body(write), errors=create_errors),
    }
    if update:
        collection["put"] = op(f"update{item}", f"replace a {item} (by name)", {200: ref(item)},
                               body=json_body(write), errors=(404,))
    return {
        f"/v2/{plural}": collection,
        f"/v2/{plural}/{{name}}": {
            "parameters": [path_param("name")],
            "get": op(f"get{item}", f"one {item}", {200: ref(item)}, errors=(404,)),
            "delete": op(f"delete{item}", f"delete a {item}", {204: None}, errors=(404,)),
        },
    }


PATHS: dict = {
    "/health": {"get": op("health", "liveness", {200: closed({"status": {"const": "ok"}})},
                          public=True)},
    "/v2/openapi.json": {"get": op("openapiDocument", "this document", {200: OBJECT},
                                   public=True)},
    "/metrics": {"get": {**op("metrics", "Prometheus metrics", {}, public=True), "responses": {
        "200": {"description": "the Prometheus text format (OpenMetrics when the Accept "
                               "header asks for it); see README.rst, Metrics and logs",
                "content": {"text/plain": {"schema": STR}}}}}},
    **definition_paths("workbooks", "Workbook", single=True, delete_errors=(404,)),
    # 409: a workflow of a workbook is deleted with its workbook
    **definition_paths("workflows", "Workflow", single=False, delete_errors=(404, 409),
                       filters=[query("workbook_name", STR, "only this workbook's workflows")]),
    # 409: an action of a workbook, or a system action
    **definition_paths("actions", "Action", single=False, delete_errors=(404, 409)),
    **keyed_paths("environments", "Environment", "EnvironmentWrite", create_errors=(409,),
                  update=True),
    # 404: the workflow or the environment it names is unknown
    **keyed_paths("cron_triggers", "CronTrigger", "CronTriggerCreate", create_errors=(404, 409),
                  update=False,
                  filters=[query("workflow_name", STR, "only triggers of this workflow")]),
    "/v2/executions": {
        "get": list_op("listExecutions", "executions", "Execution", [
            query("state", enum(WorkflowState), "only executions in this state"),
            query("workflow_name", STR, "only executions of this workflow"),
            query("root_execution_id", STR, "only the sub-executions of this execution")]),
        "post": op("startExecution", "start a workflow (an id already used returns that "
                   "execution with 200)", {201: ref("Execution"), 200: ref("Execution")},
                   body=json_body("ExecutionCreate"), errors=(404, 409)),
    },
    "/v2/executions/{id}": {
        "parameters": [path_param("id")],
        "get": op("getExecution", "one execution", {200: ref("Execution")}, errors=(404,)),
        "put": op("setExecutionState", "pause, resume, cancel or finish an execution",
                  {200: ref("Execution")}, body=json_body("ExecutionUpdate"),
                  errors=(404, 409)),
        "delete": op("deleteExecution", "delete a finished execution", {204: None},
                     params=[query("force", {"type": "boolean"},
                                   "also delete a RUNNING or PAUSED execution")],
                     errors=(400, 404, 409)),
    },
    "/v2/executions/{id}/tasks": {
        "parameters": [path_param("id")],
        "get": op("listExecutionTasks", "the tasks of an execution (default order: started)",
                  {200: ref("TaskList")}, params=list_params("tasks") + [
                      query("state", enum(TaskState), "only tasks in this state"),
                      query("name", STR, "only tasks with this name")], errors=(400, 404)),
    },
    "/v2/executions/{id}/events": {
        "parameters": [path_param("id")],
        "get": op("listExecutionEvents", "what happened, in order", {200: ref("EventList")},
                  params=[query("after", {"type": "integer", "minimum": 0, "maximum": MAX_INT},
                                "only events with a greater id"),
                          query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                                          "default": MAX_LIMIT}, "at most this many events")],
                  errors=(400, 404)),
    },
    "/v2/executions/{id}/report": {
        "parameters": [path_param("id")],
        "get": op("getExecutionReport", "the execution tree with the root cause of a failure",
                  {200: ref("Report")}, params=[
                      query("errors_only", {"type": "boolean"}, "only tasks that failed"),
                      query("max_depth", {"type": "integer", "minimum": -1},
                            "levels of sub-workflows to include (-1: all)")],
                  errors=(400, 404)),
    },
    "/v2/tasks": {
        "get": list_op("listTasks", "tasks", "Task", [
            query("workflow_execution_id", STR, "only tasks of this execution"),
            query("state", enum(TaskState), "only tasks in this state"),
            query("name", STR, "only tasks with this name")]),
    },
    "/v2/tasks/{id}": {
        "parameters": [path_param("id")],
        "get": op("getTask", "one task", {200: ref("Task")}, errors=(404,)),
        "put": op("updateTask", "rerun a failed task (RUNNING) or skip it (SKIPPED)",
                  {200: ref("Task")}, body=json_body("TaskUpdate"), errors=(404, 409)),
    },
    "/v2/tasks/{id}/action_executions": {
        "parameters": [path_param("id")],
        "get": op("listTaskActionExecutions", "the action executions of a task",
                  {200: ref("ActionExecutionList")}, params=list_params("action_executions"),
                  errors=(400, 404)),
    },
    "/v2/action_executions": {
        "get": list_op("listActionExecutions", "action_executions", "ActionExecution", [
            query("task_execution_id", STR, "only this task's action executions"),
            query("workflow_execution_id", STR, "only this execution's action executions"),
            query("state", enum(ActionState), "only action executions in this state")]),
    },
    "/v2/action_executions/{id}": {
        "parameters": [path_param("id")],
        "get": op("getActionExecution", "one action execution", {200: ref("ActionExecution")},
                  errors=(404,)),
        "put": op("completeActionExecution", "report the result of a RUNNING action",
                  {200: ref("ActionExecution")}, body=json_body("ActionExecutionUpdate"),
                  errors=(404, 409)),
    },
}

SCHEMAS.update({f"{item}List": list_response(plural, item) for plural, item in (
    ("workbooks", "Workbook"), ("workflows", "Workflow"), ("actions", "Action"),
    ("executions", "Execution"), ("tasks", "Task"), ("action_executions", "ActionExecution"),
    ("environments", "Environment"), ("cron_triggers", "CronTrigger"), ("events", "Event"))})

# -- what the dashboard reads besides the resources above ----------------------
SCHEMAS.update({
    "WorkflowGraph": closed({
        "workflow_name": STR, "type": enum(("direct", "reverse")),
        "target": {**STR_OR_NULL, "description": "reverse workflows: the task run for"},
        "nodes": array(closed({
            "id": {"type": "string", "description": "the task's name, or the command's"},
            "kind": enum(("task", "command")),
            "action": STR_OR_NULL, "workflow": STR_OR_NULL,
            "join": {"type": ["string", "integer", "null"],
                     "description": "the task's join: all, one, a number, or null"},
            "join_required": {**COUNT_OR_NULL, "description": "arrivals a join waits for"},
            "start": {"type": "boolean"}, "with_items": {"type": "boolean"},
            "line": {**COUNT, "description": "the task's line in its definition (0: unknown)"},
        })),
        "edges": array(closed({
            "source": STR, "target": STR,
            "on": enum(("success", "error", "complete", "skip", "requires")),
            "guard": {**STR_OR_NULL, "description": "the transition's condition, if any"},
        })),
    }),
    "Whoami": closed({"project": STR, "role": enum(("viewer", "operator", "admin")),
                      "name": STR, "auth": {"type": "boolean",
                                            "description": "false when served --no-auth"}}),
})
PATHS.update({
    "/v2/workflows/{name}/graph": {
        "parameters": [path_param("name")],
        "get": op("getWorkflowGraph", "a stored workflow's tasks and transitions",
                  {200: ref("WorkflowGraph")}, errors=(404,)),
    },
    "/v2/executions/{id}/graph": {
        "parameters": [path_param("id")],
        "get": op("getExecutionGraph", "the tasks and transitions of the workflow an "
                  "execution runs (its pinned spec)", {200: ref("WorkflowGraph")},
                  errors=(404,)),
    },
    "/v2/whoami": {
        "get": op("whoami", "the project and role of the token sent", {200: ref("Whoami")},
                  any_role=True),
    },
})

DOCUMENT: dict = {
    "openapi": "3.1.0",
    "info": {
        "title": "orchestrator REST API",
        "version": "2.0",
        "description": "Deployment orchestrator: Mistral v2 workflows. Every error is "
                       "{error, message} (plus problems for invalid definitions).",
    },
    "servers": [{"url": "http://127.0.0.1:8989", "description": "default ORCH_URL"}],
    "security": [{"bearer": []}, {"authToken": []}],  # either one
    "paths": PATHS,
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "a token bound to a project and role (the scheme in "
                                      "any case)"},
            "authToken": {"type": "apiKey", "in": "header", "name": "X-Auth-Token",
                          "description": "the same tokens, as Mistral's clients send them"},
        },
        "schemas": SCHEMAS,
        "responses": {name: {"description": text, "content": json_content(ref("Error"))}
                      for name, text in ERRORS.values()},
    },
}


@bp.get("/v2/openapi.json")
def document():
    return DOCUMENT
