"""The dashboard in a real browser, against a real ``orchestrator serve``: an
operator watches a stack deployment fork, join, fail on one branch and end in
ERROR, reads the first failing cause, reruns the failed task from the page and
watches it end SUCCESS; a viewer sees everything but may act on nothing;
pause, resume and cancel from the page; a workbook's YAML and graphs before it
runs; and ``--no-auth``, where no token is asked for.

The failing branch calls a local HTTP server (``tests.test_serve.Remote``)
that answers 500 to the first call and 200 after: the rerun succeeds because
the cause went away, as it would in real life."""
from __future__ import annotations

import threading
import time
import uuid

import pytest
from playwright.sync_api import expect

from tests.test_serve import Remote, Server

pytestmark = pytest.mark.browser

STACK = """\
version: '2.0'
name: stack
description: A stack in miniature, for the dashboard's browser tests.

workflows:
  deploy_stack:
    description: Network, servers and volumes in parallel; attach once servers and network exist.
    input:
      - api
    output:
      password: <% $.admin_password %>
    tasks:
      plan:
        action: std.echo output="1 network, 2 servers, 2 volumes"
        on-success: [network, servers, volumes]
      network:
        action: std.http url=<% $.api %>/network method=POST
        on-success: [attach]
      servers:
        # the password is a secret of the environment: shown as *** everywhere
        action: std.echo output=<% env().password %>
        publish:
          admin_password: <% task().result %>
        on-success: [attach]
        on-error: [rollback]
      volumes:
        action: std.http url=<% $.api %>/volumes method=POST
        on-success: [format]
      format:
        action: std.noop
      attach:
        join: all
        action: std.echo output="attached"
        on-success: [configure]
      configure:
        action: std.echo output="configured"
        on-complete: [notify]
      notify:
        action: std.noop
      rollback:
        action: std.noop
        on-complete: [fail]

  waiting:
    tasks:
      approve:
        action: std.async_noop
"""
SECRET = "hunter2-not-for-eyes"
ERROR_BG, SUCCESS_BG, NOT_STARTED_BG = "rgb(220,38,38)", "rgb(22,163,74)", "rgb(241,245,249)"
RUNNING_BG = "rgb(37,99,235)"
RAN = ("plan", "network", "servers", "attach", "configure", "notify")


@pytest.fixture(scope="module")
def remote():
    with Remote() as r:
        yield r


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(f"sqlite:///{tmp_path_factory.mktemp('dashboard')}/orch.db")
    try:
        s.client("red-op").post("/v2/workbooks", data=STACK, expect=201,
                                headers={"Content-Type": "application/x-yaml"})
        yield s
    finally:
        code = s.stop()
        print(f"--- server log (exit {code}) ---\n{s.log()}")


def deploy(server, remote, hold: threading.Event | None = None) -> str:
    """Start deploy_stack; its volumes call fails the first time (HTTP 500), and
    its network call waits for ``hold`` when one is given."""
    prefix = f"/{uuid.uuid4().hex[:8]}"
    remote.statuses[f"{prefix}/volumes"] = [500]
    if hold is not None:
        remote.hold[f"{prefix}/network"] = hold
    return server.client("red-op").start(
        "stack.deploy_stack", {"api": remote.url + prefix},
        params={"env": {"password": SECRET}, "secrets": ["password"]})["id"]


def sign_in(tab, server, token: str, path: str = "/") -> None:
    page = tab.page
    page.goto(server.url + path)
    expect(page.locator("#login")).to_be_visible()
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")
    expect(page.locator("#main")).to_be_visible()


def node_states(page) -> dict[str, str]:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll(
        '#graph-states li')].map(li => [li.dataset.node, li.dataset.state]))""")


def node_style(page, name: str, prop: str) -> str:
    value = page.evaluate("([n, p]) => orchestratorGraph.$id(n).style(p)", [name, prop])
    return value.replace(" ", "")


def click_node(page, name: str, graph: str = "orchestratorGraph") -> None:
    """Click a node where Cytoscape drew it on its canvas."""
    page.evaluate(f"""() => {graph}.container().scrollIntoView({{block: "center"}})""")
    page.wait_for_timeout(300)  # Cytoscape re-reads its container's place after a scroll
    x, y = page.evaluate(f"""n => {{
        const cy = {graph}, p = cy.$id(n).renderedPosition(),
              box = cy.container().getBoundingClientRect();
        return [box.left + p.x, box.top + p.y]; }}""", name)
    page.mouse.click(x, y)


def watch_to_the_end(page, timeout: float = 20.0) -> dict[str, set[str]]:
    """Read the execution's and the nodes' states until the execution ends;
    every state each one showed."""
    seen: dict[str, set[str]] = {}
    deadline = time.monotonic() + timeout
    while True:
        state = page.get_attribute("#execution-state", "data-state")
        seen.setdefault("@execution", set()).add(state)
        for node, s in node_states(page).items():
            seen.setdefault(node, set()).add(s)
        if state in ("SUCCESS", "ERROR", "CANCELLED"):
            return seen
        assert time.monotonic() < deadline, f"the page never showed an end: {seen}"
        time.sleep(0.1)


def test_an_operator_watches_a_deploy_fail_and_reruns_the_failed_task(server, remote, tab):
    page = tab.page
    sign_in(tab, server, "red-op")
    expect(page.locator("#identity-text")).to_contain_text("operator")
    network = threading.Event()
    execution_id = deploy(server, remote, hold=network)

    # The list updates by itself: the new execution appears without a reload.
    row = page.locator(f"#executions tr[data-execution='{execution_id}']")
    expect(row).to_have_attribute("data-state", "RUNNING")
    tab.shot("executions-list")
    row.locator("a").click()
    expect(page).to_have_url(f"{server.url}/executions/{execution_id}")

    # Live: the network call is held, so its node shows RUNNING while the rest moves on.
    expect(page.locator("#graph-states li[data-node=network]")).to_have_attribute(
        "data-state", "RUNNING")
    expect(page.locator("#graph-states li[data-node=volumes]")).to_have_attribute(
        "data-state", "ERROR")
    expect(page.locator("#graph-states li[data-node=attach]")).to_have_attribute(
        "data-state", "WAITING")
    expect(page.locator("#execution-state")).to_have_attribute("data-state", "RUNNING")
    assert node_style(page, "network", "background-color") == RUNNING_BG
    tab.shot("execution-running")
    network.set()
    seen = watch_to_the_end(page)
    assert seen["attach"] >= {"WAITING", "SUCCESS"}, seen
    expect(page.locator("#execution-state")).to_have_attribute("data-state", "ERROR")
    states = node_states(page)
    assert {n: states[n] for n in RAN} == dict.fromkeys(RAN, "SUCCESS"), states
    assert (states["volumes"], states["format"], states["rollback"]) == \
        ("ERROR", "NOT_STARTED", "NOT_STARTED"), states

    # Colours as drawn; the join is a hexagon, the engine command an oval.
    assert node_style(page, "volumes", "background-color") == ERROR_BG
    assert node_style(page, "network", "background-color") == SUCCESS_BG
    assert node_style(page, "format", "background-color") == NOT_STARTED_BG
    assert node_style(page, "attach", "shape") == "hexagon"
    assert node_style(page, "fail", "shape") == "ellipse"
    labels = page.evaluate("() => orchestratorGraph.edges().map(e => e.data('label'))")
    assert {"success", "error", "complete"} <= set(labels), labels

    # The first failing cause is on top, and its task is selected with its error.
    cause = page.locator("#root-cause")
    expect(cause).to_be_visible()
    expect(cause).to_contain_text("volumes")
    expect(cause).to_contain_text("HTTP 500")
    details = page.locator("#task-details")
    expect(details).to_have_attribute("data-task", "volumes")
    expect(details.locator("[data-field=error]")).to_contain_text("HTTP 500")
    expect(details.locator("[data-field=input]")).to_contain_text("/volumes")
    expect(page.locator("#timeline .track[data-task=network] .bar:not(.wait)"))\
        .to_have_attribute("data-state", "SUCCESS")
    expect(page.locator("#timeline .track[data-task=attach] .bar.wait")).to_have_count(1)
    expect(page.locator("#events tr[data-kind='workflow.ERROR']")).to_have_count(1)

    # A secret is masked in the task's details, and nowhere on the page in clear.
    page.click("#tasks tr[data-task=servers]")
    expect(details).to_have_attribute("data-task", "servers")
    expect(details.locator("[data-field=published]")).to_contain_text('"admin_password": "***"')
    page.click("#io summary")
    expect(page.locator("#execution-params")).to_contain_text("***")
    assert SECRET not in page.content()

    click_node(page, "volumes")  # back to the failed task, through the graph
    expect(details).to_have_attribute("data-task", "volumes")
    page.locator("#io summary").click()
    page.evaluate("window.scrollTo(0, 0)")
    tab.shot("execution-error", down_to="#timeline")  # docs/dashboard-execution.png

    page.click("#rerun")
    expect(page.locator("#execution-state")).to_have_attribute("data-state", "SUCCESS",
                                                                timeout=20_000)
    expect(page.locator("#graph-states li[data-node=format]")).to_have_attribute(
        "data-state", "SUCCESS")
    states = node_states(page)
    assert states["volumes"] == "SUCCESS" and states["rollback"] == "NOT_STARTED", states
    assert node_style(page, "volumes", "background-color") == SUCCESS_BG
    expect(cause).to_be_hidden()
    expect(details).to_have_attribute("data-state", "SUCCESS")
    expect(page.locator("#rerun")).to_have_count(0)
    expect(page.locator("#events tr[data-kind='workflow.SUCCESS']")).to_have_count(1)
    tab.shot("execution-rerun-success")
    assert SECRET not in page.content()


def test_a_viewer_sees_an_execution_but_has_no_buttons(server, remote, tab):
    execution_id = deploy(server, remote)
    final, _ = server.client("red-view").watch(execution_id)
    assert final["state"] == "ERROR"
    page = tab.page
    page.goto(f"{server.url}/executions/{execution_id}")
    page.fill("#token", "not-a-token")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("not valid")
    page.fill("#token", "red-view")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#identity-text")).to_contain_text("viewer")
    expect(page.locator("#execution-state")).to_have_attribute("data-state", "ERROR")
    expect(page.locator("#root-cause")).to_contain_text("volumes")
    expect(page.locator("#task-details")).to_have_attribute("data-task", "volumes")
    expect(page.locator("#execution-actions")).to_be_hidden()
    expect(page.locator("#rerun")).to_have_count(0)
    tab.shot("execution-viewer")


def test_pause_resume_and_cancel_from_the_page(server, tab):
    page = tab.page
    execution_id = server.client("red-op").start("stack.waiting")["id"]
    sign_in(tab, server, "red-op", f"/executions/{execution_id}")
    approve = page.locator("#graph-states li[data-node=approve]")
    expect(approve).to_have_attribute("data-state", "RUNNING")
    expect(page.locator("#resume")).to_be_disabled()
    page.click("#pause")
    expect(page.locator("#execution-state")).to_have_attribute("data-state", "PAUSED")
    expect(page.locator("#pause")).to_be_disabled()
    page.click("#resume")
    expect(page.locator("#execution-state")).to_have_attribute("data-state", "RUNNING")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cancel")
    expect(page.locator("#execution-state")).to_have_attribute("data-state", "CANCELLED")
    expect(approve).to_have_attribute("data-state", "CANCELLED")
    for button in ("#pause", "#resume", "#cancel"):
        expect(page.locator(button)).to_be_disabled()
    page.click("#io summary")
    expect(page.locator("#execution-info")).to_contain_text("cancelled from the dashboard")
    tab.shot("execution-cancelled")


def test_the_list_filters_by_workflow_and_state_and_pages(server, tab):
    red = server.client("red-op")
    for _ in range(3):
        red.start("stack.waiting")
    cancelled = red.start("stack.waiting")["id"]
    red.put(f"/v2/executions/{cancelled}", json={"state": "CANCELLED"}, expect=200)
    expected = [e["id"] for e in red.get("/v2/executions", expect=200, params={
        "workflow_name": "stack.waiting", "sort_keys": "created_at", "sort_dirs": "desc",
        "limit": 1000}).json()["executions"]]
    page = tab.page
    sign_in(tab, server, "red-op", "/?workflow_name=stack.waiting&limit=2")
    rows = page.locator("#executions tbody tr[data-execution]")

    def shown() -> list[str]:
        return [r.get_attribute("data-execution") for r in rows.all()]

    expect(rows.first).to_have_attribute("data-execution", expected[0])
    assert shown() == expected[:2]
    expect(page.locator("#newer")).to_be_disabled()
    page.click("#older")
    expect(rows.first).to_have_attribute("data-execution", expected[2])
    assert shown() == expected[2:4]
    page.click("#newer")
    expect(rows.first).to_have_attribute("data-execution", expected[0])
    page.select_option("#filter-state", "CANCELLED")
    expect(rows.first).to_have_attribute("data-state", "CANCELLED")
    assert cancelled in shown() and len(shown()) <= 2
    assert "state=CANCELLED" in page.url and "workflow_name=stack.waiting" in page.url


def test_a_workbook_shows_its_yaml_highlighted_and_each_workflows_graph(server, tab):
    page = tab.page
    sign_in(tab, server, "red-op", "/workbooks")
    page.click("#workbooks a:text('stack')")
    expect(page).to_have_url(f"{server.url}/workbooks/stack")
    card = page.locator("section[data-workflow='stack.deploy_stack']")
    expect(card.locator("li[data-node]")).to_have_count(10)  # nine tasks and `fail`
    expect(card.locator("li[data-node=attach]")).to_have_attribute("data-join", "true")
    expect(card.locator("li[data-node=fail]")).to_have_attribute("data-kind", "command")
    expect(page.locator("section[data-workflow='stack.waiting'] li[data-node]")).to_have_count(1)
    assert page.locator("#yaml .yl").count() == len(STACK.splitlines())
    keys = page.locator("#yaml .k").all_inner_texts()
    assert {"workflows", "deploy_stack", "on-success", "join"} <= set(keys), keys
    assert "<% $.api %>" in " ".join(page.locator("#yaml .x").all_inner_texts())
    assert page.locator("#yaml .c").first.inner_text().startswith("# the password")
    click_node(page, "attach", "orchestratorGraphs['stack.deploy_stack']")
    expect(page.locator("#yaml .yl.hit")).to_have_text("      attach:")
    tab.shot("workbook")


def test_without_auth_no_token_is_asked_for(tmp_path, tab):
    s = Server(f"sqlite:///{tmp_path}/orch.db", "--no-auth")
    try:
        page = tab.page
        page.goto(s.url + "/")
        expect(page.locator("#main")).to_be_visible()
        expect(page.locator("#login")).to_be_hidden()
        expect(page.locator("#executions td.empty")).to_have_text("No executions match.")
        page.click("nav a:text('Workbooks')")
        expect(page.locator("#workbooks td.empty")).to_contain_text("No workbook yet")
    finally:
        assert s.stop() == 0, s.log()
