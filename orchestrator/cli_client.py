"""The commands that talk to a running ``orchestrator serve`` over the REST API:
``workbook``, ``workflow``, ``action``, ``execution``, ``task``,
``action-execution``, ``env`` and ``cron-trigger``. Every one takes ``--url``
and ``--token`` (default ``ORCH_URL`` and ``ORCH_TOKEN``) and ``--json`` for one
JSON document on stdout. Errors reach the one boundary in ``cli.main``."""
from __future__ import annotations

import argparse
import functools
import json
import sys

from orchestrator.cli import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    STATE_EXIT,
    UsageError,
    _json_arg,
    _read,
)
from orchestrator.client import Client
from orchestrator.errors import InvalidDefinition, Problem
from orchestrator.watch import Watcher

DEFINITIONS = {"workbook": "workbooks", "workflow": "workflows", "action": "actions"}


# -- output -------------------------------------------------------------------------------
def _client(args) -> Client:
    return Client(args.url, args.token)


def _dump(data) -> None:
    print(json.dumps(data, indent=2, default=str))


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and len(value) >= 19 and value[4:5] == "-" and value[10:11] == "T":
        return value[:19].replace("T", " ")  # ISO time in UTC, to the second
    if isinstance(value, (dict, list)):
        value = json.dumps(value, default=str)
    text = str(value).splitlines()[0] if str(value) else ""
    return text if len(text) <= 60 else text[:57] + "..."


def table(rows: list[dict], columns: list[str]) -> None:
    """Plain aligned columns, one row per item."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    for line in [[c.upper() for c in columns], *cells]:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip())


def show(obj: dict, skip: tuple = ("definition",)) -> None:
    """One object as ``key: value`` lines; structured values as indented JSON."""
    width = max((len(k) for k in obj if k not in skip), default=0)
    for key, value in obj.items():
        if key in skip:
            continue
        if isinstance(value, (dict, list)) and value:
            text = json.dumps(value, indent=2, default=str).replace("\n", "\n" + " " * (width + 2))
        else:
            text = "-" if value is None else str(value)
        print(f"{key + ':':<{width + 2}}{text}")


def _invalid(problems: list[Problem]) -> int:
    for problem in problems:
        print(problem, file=sys.stderr)
    return EXIT_INVALID


def _command(fn):
    """A definition the server rejects is exit 3 with each problem on stderr."""
    @functools.wraps(fn)
    def run(args) -> int:
        try:
            return fn(args)
        except InvalidDefinition as e:
            return _invalid(e.problems)
    return run


def _json_value(value: str | None, what: str):
    if value is None:
        return None
    if value.startswith("@"):
        value = _read(value[1:])
    try:
        return json.loads(value)
    except json.JSONDecodeError as e:
        raise UsageError(f"{what} is not valid JSON: {e}") from None


# -- any resource ---------------------------------------------------------------------
def _list(args, resource: str, columns: list[str], **filters) -> int:
    client = _client(args)
    if args.all:
        items = client.list(resource, limit=args.limit, follow=True, **filters)
        page = {resource: items}
    else:
        params = {k: v for k, v in filters.items() if v is not None}
        if args.limit:
            params["limit"] = args.limit
        page = client.request("GET", f"/v2/{resource}", params=params)
        items = page[resource]
    if args.json:
        _dump(page)
        return EXIT_OK
    table(items, columns)
    if page.get("next"):
        print(f"(more {resource.replace('_', ' ')}: use --all, or --limit)", file=sys.stderr)
    return EXIT_OK


def _get(args, resource: str, name: str) -> int:
    obj = _client(args).get(resource, name)
    if args.json:
        _dump(obj)
    elif getattr(args, "definition", False):
        sys.stdout.write(obj["definition"])
    else:
        show(obj)
    return EXIT_OK


def _delete(args, resource: str, what: str, name: str, **params) -> int:
    _client(args).delete(resource, name, **params)
    if args.json:
        _dump({"deleted": name})
    else:
        print(f"{what} {name} deleted")
    return EXIT_OK


def _done(args, obj: dict, message: str) -> int:
    if args.json:
        _dump(obj)
    else:
        print(message)
    return EXIT_OK


# -- workbooks, workflows, actions -------------------------------------------------------
def cmd_definition(args) -> int:
    what, resource = args.noun, DEFINITIONS[args.noun]
    client, op = _client(args), args.op
    if op in ("create", "update"):
        text = _read(args.file)
        call = client.create_definition if op == "create" else client.update_definition
        result = call(resource, text, file=args.file)
        if args.json:
            _dump(result)
            return EXIT_OK
        for item in [result] if what == "workbook" else result[resource]:
            print(f"{what} {item['name']} {op}d")
        return EXIT_OK
    if op == "validate":
        result = client.validate_definition(resource, _read(args.file))
        if args.json:
            _dump(result)
        elif result.get("valid"):
            print(f"{args.file}: valid")
        if result.get("valid"):
            return EXIT_OK
        problems = [Problem(p.get("path", ""), p.get("message", ""), p.get("line") or 0,
                            args.file) for p in result.get("problems") or []]
        if not args.json:
            _invalid(problems or [Problem("", result.get("error") or "not valid", 0, args.file)])
        return EXIT_INVALID
    if op == "list":
        columns = {"workbook": ["name", "tags", "created_at", "updated_at"],
                   "workflow": ["name", "workbook_name", "created_at", "updated_at"],
                   "action": ["name", "is_system", "input", "description"]}[what]
        return _list(args, resource, columns, workbook_name=getattr(args, "workbook", None))
    if op == "get":
        return _get(args, resource, args.name)
    return _delete(args, resource, what, args.name)


# -- executions ---------------------------------------------------------------------------
def _env_arg(value: str | None):
    if value is None:
        return None
    if value.startswith(("{", "@")):
        return _json_arg(value, "--env")
    return value  # the name of a stored environment


def _final(args, ex: dict) -> int:
    if args.json:
        _dump(ex)
    else:
        print(f"execution {ex['id']} ({ex['workflow_name']}): {ex['state']}")
        if ex.get("state_info"):
            print(f"  {ex['state_info']}")
        if ex.get("output") is not None:
            print("output: " + json.dumps(ex["output"], indent=2, default=str))
    return STATE_EXIT.get(ex["state"], EXIT_FAILED)


def _watch(args, client: Client, execution_id: str) -> int:
    watcher = Watcher(client, execution_id, None if args.json else sys.stderr)
    try:
        ex = watcher.run()
    except KeyboardInterrupt:
        print(f"\nstopped watching; execution {execution_id} goes on "
              f"(orchestrator execution watch {execution_id})", file=sys.stderr)
        return 130
    if not args.json:
        done, known = watcher.progress()
        print(f"{done}/{known} known tasks finished", file=sys.stderr)
    return _final(args, ex)


def cmd_execution(args) -> int:
    client, op = _client(args), args.op
    if op == "start":
        ex = client.start_execution(
            args.workflow, _json_arg(args.input, "--input"), env=_env_arg(args.env),
            task_name=args.task_name, description=args.description, id=args.id)
        if args.watch:
            if not args.json:
                print(f"execution {ex['id']} started ({ex['workflow_name']})", file=sys.stderr,
                      flush=True)
            return _watch(args, client, ex["id"])
        return _done(args, ex, f"execution {ex['id']} started ({ex['workflow_name']}): "
                               f"{ex['state']}")
    if op == "list":
        return _list(args, "executions", ["id", "workflow_name", "state", "created_at",
                                          "finished_at", "state_info"],
                     state=args.state, workflow_name=args.workflow)
    if op == "get":
        return _get(args, "executions", args.id)
    if op == "watch":
        return _watch(args, client, args.id)
    if op in ("pause", "resume", "cancel", "fail", "succeed"):
        state = {"pause": "PAUSED", "resume": "RUNNING", "cancel": "CANCELLED",
                 "fail": "ERROR", "succeed": "SUCCESS"}[op]
        ex = client.set_execution_state(args.id, state, getattr(args, "message", None))
        return _done(args, ex, f"execution {ex['id']}: {ex['state']}")
    if op == "delete":
        return _delete(args, "executions", "execution", args.id,
                       **({"force": "true"} if args.force else {}))
    if op == "report":
        report = client.report(args.id)
        if args.json:
            _dump(report)
        else:
            print_report(report)
        return EXIT_OK
    events = client.events(args.id)
    if args.json:
        _dump({"events": events})
    else:
        table([{**e, "data": e.get("data") or None} for e in events],
              ["id", "at", "kind", "task_id", "data"])
    return EXIT_OK


def print_report(report: dict) -> None:
    ex = report["execution"]
    print(f"execution {ex['id']} ({ex['workflow_name']}): {ex['state']}")
    cause = report.get("root_cause")
    if cause:
        print(f"root cause: task {cause.get('task')} of execution {cause.get('execution_id')}: "
              f"{cause.get('state_info')}")
    stats = report.get("statistics") or {}
    counts = ", ".join(f"{k} {v}" for k, v in stats.items() if k != "total_tasks" and v)
    print(f"tasks: {stats.get('total_tasks', 0)}" + (f" ({counts})" if counts else ""))

    def tree(execution: dict, depth: int) -> None:
        pad = "  " * depth
        for task in execution.get("tasks", []):
            line = f"{pad}- {task['name']}: {task['state']}"
            if task.get("state_info") and task["state"] != "SUCCESS":
                line += f" ({task['state_info'].splitlines()[0]})"
            print(line)
            for action in task.get("action_executions", []):
                item = f"[{action['item_index']}]" if task.get("items_total") else ""
                print(f"{pad}    action {action['name']}{item}: {action['state']}")
            for sub in task.get("sub_executions", []):
                print(f"{pad}    execution {sub['id']} ({sub['workflow_name']}): {sub['state']}")
                tree(sub, depth + 3)

    tree(ex, 1)


# -- tasks and action executions -------------------------------------------------------
def cmd_task(args) -> int:
    client, op = _client(args), args.op
    if op == "list":
        return _list(args, "tasks", ["id", "name", "state", "workflow_execution_id",
                                     "started_at", "finished_at"],
                     workflow_execution_id=args.execution, state=args.state)
    if op == "get":
        return _get(args, "tasks", args.id)
    if op == "rerun":
        task = client.rerun_task(args.id, reset=not args.failed_items_only)
    else:
        task = client.skip_task(args.id)
    # The engine may have moved the task on already: say what was done, then where it is.
    done = "rerun" if op == "rerun" else "skipped"
    return _done(args, task, f"task {task['id']} ({task['name']}) {done}: now {task['state']}")


def cmd_action_execution(args) -> int:
    op = args.op
    if op == "list":
        return _list(args, "action_executions", ["id", "name", "state", "task_execution_id",
                                                 "item_index", "created_at"],
                     task_execution_id=args.task)
    if op == "get":
        return _get(args, "action_executions", args.id)
    action = _client(args).complete_action(args.id, args.state,
                                           _json_value(args.output, "--output"))
    return _done(args, action, f"action execution {action['id']} ({action['name']}): "
                               f"{action['state']}")


# -- environments and cron triggers ------------------------------------------------------
def _variables(pairs: list[str], what: str) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} {pair!r} is not KEY=VALUE")
        try:
            out[key] = json.loads(value)  # numbers, booleans, lists...; plain text otherwise
        except json.JSONDecodeError:
            out[key] = value
    return out


def cmd_env(args) -> int:
    client, op = _client(args), args.op
    if op in ("create", "update"):
        if args.file and args.name:
            raise UsageError("give either FILE.json or --name, not both")
        if args.file:
            body = _json_arg("@" + args.file, args.file)
        elif args.name:
            secrets = _variables(args.secret, "--secret")
            body = {"name": args.name, "variables": {**_variables(args.var, "--var"), **secrets},
                    "secrets": sorted(secrets)}
            if args.description is not None:
                body["description"] = args.description
        else:
            raise UsageError(f"env {op} needs FILE.json or --name NAME --var KEY=VALUE ...")
        env = (client.create if op == "create" else client.update)("environments", body)
        return _done(args, env, f"environment {env['name']} {op}d")
    if op == "list":
        return _list(args, "environments", ["name", "description", "created_at", "updated_at"])
    if op == "get":
        return _get(args, "environments", args.name)
    return _delete(args, "environments", "environment", args.name)


def cmd_cron_trigger(args) -> int:
    op = args.op
    if op == "create":
        body = {"name": args.name, "workflow_name": args.workflow, "pattern": args.pattern,
                "workflow_input": _json_arg(args.input, "--input"),
                "workflow_params": _json_arg(args.params, "--params")}
        if args.first_time:
            body["first_execution_time"] = args.first_time
        if args.count is not None:
            body["remaining_executions"] = args.count
        if args.timezone:
            body["timezone"] = args.timezone
        trigger = _client(args).create("cron_triggers", body)
        return _done(args, trigger, f"cron trigger {trigger['name']} created; next run "
                                    f"{_cell(trigger.get('next_execution_time'))}")
    if op == "list":
        return _list(args, "cron_triggers", ["name", "workflow_name", "pattern",
                                             "next_execution_time", "remaining_executions"])
    if op == "get":
        return _get(args, "cron_triggers", args.name)
    return _delete(args, "cron_triggers", "cron trigger", args.name)


# -- the parser ---------------------------------------------------------------------------
def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--url", help="API base URL (default: ORCH_URL or http://127.0.0.1:8989)")
    p.add_argument("--token", help="API bearer token (default: ORCH_TOKEN)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    return p


def add_commands(subparsers) -> None:
    """Register the API client commands on the ``orchestrator`` parser's subparsers."""
    common = _common()
    paging = argparse.ArgumentParser(add_help=False)
    paging.add_argument("--limit", type=int, help="items per page (server default 100)")
    paging.add_argument("--all", action="store_true", help="follow the pages to the end")

    def noun(name: str, help: str, func):
        p = subparsers.add_parser(name, help=help)
        ops = p.add_subparsers(dest="op", required=True, metavar="COMMAND")
        p.set_defaults(func=_command(func), noun=name)

        def op(op_name: str, help: str, *args: str, paged: bool = False):
            parents = [common, paging] if paged else [common]
            q = ops.add_parser(op_name, help=help, parents=parents)
            for a in args:
                q.add_argument(a.lower(), metavar=a)
            return q
        return op

    for name, resource in DEFINITIONS.items():
        op = noun(name, f"{resource} stored on the server", cmd_definition)
        op("create", f"upload a new {name} (YAML)", "FILE")
        op("update", f"replace a {name} (YAML; the name inside identifies it)", "FILE")
        q = op("list", f"list {resource}", paged=True)
        if name != "workbook":
            q.add_argument("--workbook", help="only those of this workbook")
        op("get", f"show a {name}", "NAME").add_argument(
            "--definition", action="store_true", help="print the YAML definition")
        op("delete", f"delete a {name}", "NAME")
        if name != "action":
            op("validate", f"check a {name} file on the server (exit 3 if invalid)", "FILE")

    op = noun("execution", "workflow executions", cmd_execution)
    q = op("start", "start a workflow", "WORKFLOW")
    q.add_argument("--input", help="input as a JSON object (or @file.json)")
    q.add_argument("--env", help="env() as a JSON object, @file.json, or a stored environment")
    q.add_argument("--task-name", help="reverse workflows: the task to reach")
    q.add_argument("--id", help="execution id, a UUID (starting twice with one id starts once)")
    q.add_argument("--description")
    q.add_argument("--watch", action="store_true",
                   help="follow it to its end; exit 0 SUCCESS, 1 ERROR/CANCELLED, 2 PAUSED")
    q = op("list", "list executions", paged=True)
    q.add_argument("--state")
    q.add_argument("--workflow", help="workflow name")
    op("get", "show an execution", "ID")
    op("watch", "follow an execution to its end (exit code as start --watch)", "ID")
    op("pause", "pause a running execution", "ID")
    op("resume", "resume a paused execution", "ID")
    op("cancel", "cancel an execution", "ID").add_argument("--message", help="why")
    op("fail", "force an execution to end in ERROR", "ID").add_argument(
        "--message", required=True, help="why")
    op("succeed", "force an execution to end in SUCCESS", "ID").add_argument(
        "--message", required=True, help="why")
    op("delete", "delete an ended execution", "ID").add_argument(
        "--force", action="store_true", help="also a RUNNING or PAUSED one")
    op("report", "the execution's tree with its root cause", "ID")
    op("events", "the execution's event history", "ID")

    op = noun("task", "task executions", cmd_task)
    q = op("list", "list tasks", paged=True)
    q.add_argument("--execution", help="only the tasks of this execution")
    q.add_argument("--state")
    op("get", "show a task", "ID")
    op("rerun", "run a failed task again", "ID").add_argument(
        "--failed-items-only", action="store_true",
        help="with-items: run only the items that failed (reset=false)")
    op("skip", "skip a failed task: the workflow goes on as if it succeeded", "ID")

    op = noun("action-execution", "action executions", cmd_action_execution)
    op("list", "list action executions", paged=True).add_argument(
        "--task", help="only those of this task")
    op("get", "show an action execution", "ID")
    q = op("complete", "give an asynchronous action its result", "ID")
    q.add_argument("--state", required=True, choices=["SUCCESS", "ERROR", "CANCELLED"])
    q.add_argument("--output", help="the result as JSON (or @file.json)")

    op = noun("env", "environments: variables for env()", cmd_env)
    for name in ("create", "update"):
        q = op(name, f"{name} an environment from FILE.json or --name/--var")
        q.add_argument("file", nargs="?", metavar="FILE.json")
        q.add_argument("--name")
        q.add_argument("--description")
        q.add_argument("--var", action="append", default=[], metavar="KEY=VALUE",
                       help="a variable (VALUE is parsed as JSON if it can be); repeatable")
        q.add_argument("--secret", action="append", default=[], metavar="KEY=VALUE",
                       help="a variable shown as *** by the API; repeatable")
    op("list", "list environments", paged=True)
    op("get", "show an environment", "NAME")
    op("delete", "delete an environment", "NAME")

    op = noun("cron-trigger", "start workflows on a schedule", cmd_cron_trigger)
    q = op("create", "create a cron trigger", "NAME", "WORKFLOW")
    q.add_argument("--pattern", required=True, help='cron pattern, e.g. "0 * * * *"')
    q.add_argument("--input", help="workflow input as a JSON object (or @file.json)")
    q.add_argument("--params", help="execution params as a JSON object (or @file.json)")
    q.add_argument("--first-time", help="first run (ISO 8601)")
    q.add_argument("--count", type=int, help="number of runs, then the trigger is done")
    q.add_argument("--timezone", help="zone of the pattern (default UTC)")
    op("list", "list cron triggers", paged=True)
    op("get", "show a cron trigger", "NAME")
    op("delete", "delete a cron trigger", "NAME")
