"""The web dashboard served by ``orchestrator serve`` at ``/``: executions,
an execution's graph, timeline, tasks and history, and the workbooks.

The pages are shells: they hold no data and need no token. Their JavaScript
asks for a token once (kept in the tab's ``sessionStorage``), then reads and
acts through the REST API ``/v2`` with it, so the API stays the one source of
truth and the one place that decides who may do what. The graph is drawn by
Cytoscape.js with the dagre layout, shipped in ``static/vendor`` (nothing is
fetched from the network at run time)."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template

bp = Blueprint("dashboard", __name__, template_folder="templates", static_folder="static",
               static_url_path="/dashboard/static")

# Served without a token: the pages carry no data.
PUBLIC = frozenset({"dashboard.executions", "dashboard.execution", "dashboard.workbooks",
                    "dashboard.workbook", "dashboard.workflow", "dashboard.static"})

# A strict policy: only our own scripts run (no inline script, nothing from elsewhere),
# so a value shown on a page can never become code. Cytoscape sets style attributes.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' "
                               "'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _page(template: str, **context):
    no_auth = current_app.extensions["orchestrator"].no_auth
    html = render_template(f"dashboard/{template}", auth=not no_auth, **context)
    return html, 200, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
                       **SECURITY_HEADERS}


@bp.get("/")
def executions():
    return _page("executions.html", page="executions", title="Executions")


@bp.get("/executions/<id>")
def execution(id: str):
    return _page("execution.html", page="execution", title=f"Execution {id}", key=id)


@bp.get("/workbooks")
def workbooks():
    return _page("workbooks.html", page="workbooks", title="Workbooks")


@bp.get("/workbooks/<name>")
def workbook(name: str):
    return _page("definition.html", page="workbook", title=f"Workbook {name}", key=name)


@bp.get("/workflows/<name>")
def workflow(name: str):
    return _page("definition.html", page="workflow", title=f"Workflow {name}", key=name)
