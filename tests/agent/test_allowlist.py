"""The Salt allowlist: exact, well-formed names; globs that never cross ',' or whitespace;
functions that call other functions (agent_bridge.allowlist.INDIRECT) allowed only when
what they would call is. The lab tests make the calls through the engine to a real minion."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from agent_bridge import allowlist, config
from agent_bridge.actions import Cmd
from agent_bridge.config import SaltConfig
from orchestrator import dsl
from orchestrator.api import ApiConfig, create_app
from orchestrator.errors import InvalidDefinition, InvalidInput
from tests.agent.helpers import AgentEngine, workflow

NARROW = SaltConfig(allowlist=("test.*",))
EVERYTHING = SaltConfig(allowlist=("*",))


@pytest.fixture
def allowlist_env(monkeypatch):
    def set_(value):
        monkeypatch.setenv("ORCH_SALT_ALLOWLIST", value)
        config.reset()
    yield set_
    config.reset()


# -- names and globs ------------------------------------------------------------------------
@pytest.mark.parametrize("fun", [
    "test.ping,cmd.script", "test.ping, cmd.script", "test.ping cmd.script", "test.ping\ncmd.run",
    "test.ping\n", " test.ping", "test.ping;id", "test.ping()", "test.*", "test.p?ng", "test",
    ".ping", "test.", "test..ping", "tést.ping", "../cmd.run", "'test.ping'", ""])
def test_a_malformed_function_name_is_refused_even_by_an_allowlist_of_everything(fun):
    message = EVERYTHING.refusal(fun)
    assert message and "is not a single Salt function name" in message


def test_a_glob_matches_whole_names_and_never_across_a_comma_or_whitespace():
    cfg = SaltConfig(allowlist=("test.*", "disk.[uf]*", "grains.item?", "mount.[!u]*"))
    for fun in ("test.ping", "test.echo", "disk.usage", "disk.format", "grains.items",
                "mount.active"):
        assert cfg.refusal(fun) is None, fun
    for fun in ("disk.wipe", "grains.item", "mount.umount", "xtest.ping", "Test.ping",
                "cmd.run"):
        assert "is not in the allowlist" in cfg.refusal(fun), fun
    for fun in ("test.ping,cmd.script", "test.ping cmd.run", "disk.usage\tcmd.run",
                "grains.item,"):
        assert "is not a single Salt function name" in cfg.refusal(fun), fun
    assert allowlist.compile_glob("test.*").fullmatch("test.ping,cmd.run") is None
    assert allowlist.compile_glob("grains.item?").fullmatch("grains.item,") is None
    assert allowlist.compile_glob("grains.item?").fullmatch("grains.item ") is None


@pytest.mark.parametrize("value", ["test.* cmd.run", "test.*;cmd.run", "test.*\tcmd.run",
                                   "cmd.run()", "disk.[ab", "test.*/x", "test.]"])
def test_an_allowlist_entry_that_is_no_glob_of_names_is_refused_when_read(value, tmp_path):
    with pytest.raises(InvalidInput, match="ORCH_SALT_ALLOWLIST: "):
        SaltConfig.from_env({"ORCH_SALT_ALLOWLIST": value})
    path = tmp_path / "salt.yaml"
    path.write_text(f"allowlist: [test.*]\nprojects:\n  p: {{allowlist: [{value!r}]}}\n")
    with pytest.raises(InvalidInput, match="projects.p.allowlist"):
        SaltConfig.from_env({"ORCH_SALT_CONFIG": str(path)})
    assert SaltConfig.from_env({"ORCH_SALT_ALLOWLIST": "test.*, cmd.run"}).allowlist == \
        ("test.*", "cmd.run")


def test_a_list_of_functions_is_refused():
    with pytest.raises(InvalidInput, match="a list of functions \\(a compound job\\) is refused"):
        Cmd(tgt="*", fun=["test.ping", "cmd.run"], arg=[[], ["id"]])
    assert "compound job" in EVERYTHING.refusal(["test.ping", "cmd.run"])


# -- functions that call other functions --------------------------------------------------------
REFUSED_CALLS = [  # (fun, arg, kwarg): each would call cmd.run
    ("test.try", [], {"module": "cmd.run", "cmd": "id"}),
    ("test.try", ["cmd.run"], {"cmd": "id"}),
    ("test.try", ["module=cmd.run", "cmd=id"], {}),
    ("test.try", ["module=cmd.run\n", "cmd=id"], {}),  # the minion parses this one too
    ("test.try", [{"__kwarg__": True, "module": "cmd.run", "cmd": "id"}], {}),
    ("test.try", ["module=test.ping"], {"module": "cmd.run"}),  # the last one wins, as in Salt
    ("test.try", [], {"module": "test.cross_test", "func": "cmd.run", "args": ["id"]}),
    ("test.cross_test", ["cmd.run", ["id"]], {}),
    ("test.cross_test", [], {"func": "cmd.run", "args": ["id"]}),
    ("test.cross_test", ["func=cmd.run", "args=[id]"], {}),
    ("test.cross_test", ["test.try", ["cmd.run"]], {}),
]


@pytest.mark.parametrize("fun, arg, kwarg", REFUSED_CALLS)
def test_an_indirect_call_of_a_function_outside_the_allowlist_is_refused_naming_it(
        allowlist_env, fun, arg, kwarg):
    allowlist_env("test.*")
    with pytest.raises(InvalidInput) as e:
        Cmd(tgt="vm-1", fun=fun, arg=arg, kwarg=kwarg)
    assert f"Salt function '{fun}' would call " in str(e.value)
    assert "would call 'cmd.run'" in str(e.value)
    assert "'cmd.run' is not in the allowlist (test.*); a function that calls another is " \
           "allowed only when the function it calls is allowed" in str(e.value)


@pytest.mark.parametrize("fun, arg, kwarg", [
    ("test.try", [], {"module": "test.arg_clean", "value": 1}),
    ("test.try", ["module=test.ping"], {}),
    ("test.cross_test", ["test.echo", ["hello"]], {}),
    ("test.cross_test", [], {"func": "test.echo", "args": ["hello"]}),
    ("test.try", [], {"module": "test.cross_test", "func": "test.echo", "args": ["hi"]}),
])
def test_an_indirect_call_of_an_allowed_function_is_allowed(fun, arg, kwarg):
    assert NARROW.refusal(fun, arg=arg, kwarg=kwarg) is None


@pytest.mark.parametrize("fun, arg, kwarg, words", [
    ("test.try", [], {}, "its 'module' argument, which is missing"),
    ("test.try", [], {"module": ["test.ping"]}, "its 'module' argument is not a function name"),
    ("test.try", ['module="test.ping"'], {}, "'\"test.ping\"' is not a single Salt function"),
    ("test.cross_test", [], {"func": "test.try", "args": "test.ping"},
     "'test.try' is refused: it is called with arguments that cannot be read here"),
    ("test.cross_test", ["a", "b", "c"], {}, "it takes at most 2 positional argument(s)"),
    ("test.try", ["test.ping"], {"module": "test.ping"}, "its 'module' argument is given twice"),
])
def test_an_indirect_call_whose_inner_function_cannot_be_read_is_refused(fun, arg, kwarg, words):
    assert words in EVERYTHING.refusal(fun, arg=arg, kwarg=kwarg)


# For each "calls" entry: (arg, kwarg) calling the function given, and an allowed inner.
CALLS = {
    "test.try": lambda f: ([], {"module": f}),
    "test.cross_test": lambda f: ([f], {}),
    "saltutil.cmd": lambda f: (["*", f], {}),
    "saltutil.cmd_iter": lambda f: ([], {"tgt": "*", "fun": f}),
    "saltutil.mmodule": lambda f: (["base", f], {}),
    "publish.publish": lambda f: (["*", f, ["x"]], {}),
    "publish.full_data": lambda f: ([], {"tgt": "*", "fun": f}),
    "mine.send": lambda f: (["alias"], {"mine_function": f}),
    "mine.update": lambda f: ([], {"mine_functions": {"alias": [{"mine_function": f}]}}),
    "schedule.add": lambda f: (["job"], {"function": f, "seconds": 60}),
    "schedule.modify": lambda f: (["job", f"function={f}"], {}),
    "snapper.run": lambda f: ([f], {}),
    "chroot.call": lambda f: (["/srv/root", f], {}),
    "docker.call": lambda f: (["c1", f], {}),
    "dockerng.call": lambda f: (["c1"], {"function": f}),
    "moby.call": lambda f: (["c1", f, "x"], {}),
    "transactional_update.call": lambda f: ([f], {}),
    "saltcheck.run_test": lambda f: ([], {"test": {"module_and_function": f}}),
    "napalm.netmiko_fun": lambda f: ([f.removeprefix("netmiko.")], {}),
    "napalm.junos_call": lambda f: ([f.removeprefix("junos.")], {}),
    "nxos.cmd": lambda f: ([f.removeprefix("nxos.")], {}),
    "keystoneng.get_entity": lambda f: ([f.removeprefix("keystoneng.").removesuffix("_get")],
                                        {}),
    "lxc.init": lambda f: (["c1"], {"seed_cmd": f}),
    "virt.init": lambda f: (["vm", 1, 512], {"seed_cmd": f}),
}
PREFIXED = {"napalm.netmiko_fun": "netmiko.", "napalm.junos_call": "junos.", "nxos.cmd": "nxos.",
            "keystoneng.get_entity": "keystoneng."}


def test_every_calls_entry_of_the_table_has_a_case_here():
    assert set(CALLS) == {n for n, e in allowlist.INDIRECT.items() if e.kind == "calls"}


@pytest.mark.parametrize("fun", sorted(CALLS))
def test_each_indirect_function_is_allowed_exactly_when_what_it_would_call_is(fun):
    prefix = PREFIXED.get(fun, "")
    good, bad = (f"{prefix}user_get", f"{prefix}role_get") if prefix == "keystoneng." else \
        (f"{prefix}ok_fun", f"{prefix}bad_fun")
    if not prefix:
        good, bad = "test.ping", "cmd.run"
    cfg = SaltConfig(allowlist=(fun, "test.*", good))
    arg, kwarg = CALLS[fun](good)
    assert cfg.refusal(fun, arg=arg, kwarg=kwarg) is None
    arg, kwarg = CALLS[fun](bad)
    message = cfg.refusal(fun, arg=arg, kwarg=kwarg)
    assert message and f"would call '{bad}'" in message and f"'{bad}' is not in" in message


def test_without_the_argument_that_names_it_the_call_is_refused():
    for fun, arg, kwarg in [("mine.update", [], {}), ("schedule.modify", ["job"], {"seconds": 5}),
                            ("lxc.init", ["c1"], {}), ("saltcheck.run_test", [], {}),
                            ("saltutil.cmd", ["*"], {})]:
        message = EVERYTHING.refusal(fun, arg=arg, kwarg=kwarg)
        assert message and f"Salt function '{fun}' is refused" in message, fun
    assert EVERYTHING.refusal("virt.init", arg=["vm", 1, 512]) is None  # seed.apply, allowed here
    assert "would call 'seed.apply'" in SaltConfig(allowlist=("virt.*",)).refusal(
        "virt.init", arg=["vm", 1, 512])
    assert SaltConfig(allowlist=("virt.*",)).refusal("virt.init", arg=["vm", 1, 512],
                                                     kwarg={"seed": False}) is None
    assert "would call 'cmd.run' (its 'name' argument" in SaltConfig(
        allowlist=("mine.*",)).refusal("mine.send", arg=["cmd.run"])


@pytest.mark.parametrize("fun", sorted(n for n, e in allowlist.INDIRECT.items()
                                       if e.kind == "refused"))
def test_functions_that_run_what_the_call_cannot_show_are_always_refused(fun):
    message = EVERYTHING.refusal(fun, arg=["x"], kwarg={"y": 1})
    assert message and message.startswith(f"Salt function '{fun}' is refused: ")


@pytest.mark.parametrize("fun", sorted(n for n, e in allowlist.INDIRECT.items()
                                       if e.kind == "template"))
def test_a_template_argument_is_refused_by_position_keyword_or_string(fun):
    at = allowlist.INDIRECT[fun].template_at
    args = ["x"] * at
    assert EVERYTHING.refusal(fun, arg=args) is None
    assert EVERYTHING.refusal(fun, arg=args, kwarg={"template": None}) is None
    for arg, kwarg in [(args + ["jinja"], {}), (args, {"template": "jinja"}),
                       (args + ["template=py"], {})]:
        message = EVERYTHING.refusal(fun, arg=arg, kwarg=kwarg)
        assert message and "with a 'template' argument" in message


def test_cmd_run_with_a_template_is_not_refused():
    # cmd.run runs any command anyway; its template (used by the lab tests) adds nothing.
    assert SaltConfig().refusal("cmd.run", arg=["echo {{ grains['id'] }}"],
                                kwarg={"template": "jinja"}) is None


def test_calls_nested_without_end_are_refused():
    deep: list = ["test.ping", []]
    assert NARROW.refusal("test.cross_test", arg=deep) is None
    for _ in range(allowlist.MAX_DEPTH + 1):
        deep = ["test.cross_test", deep]
    assert "nested deeper than" in NARROW.refusal("test.cross_test", arg=deep)


# -- validation ---------------------------------------------------------------------------------
def test_validation_refuses_a_literal_indirect_call_naming_the_inner_function(allowlist_env):
    allowlist_env("test.*")
    text = workflow("salt.cmd", {"tgt": "vm-1", "fun": "test.try",
                                 "kwarg": {"module": "cmd.run", "cmd": "<% $.c %>"}})
    with pytest.raises(InvalidDefinition, match="Salt function 'test.try' would call 'cmd.run' "
                                                "\\(its 'module' argument\\)"):
        dsl.load(text, "x.yaml")
    with pytest.raises(InvalidDefinition, match="is not a single Salt function name"):
        dsl.load(workflow("salt.cmd", {"tgt": "vm-1", "fun": "test.ping,cmd.script"}))


def test_validation_leaves_an_inner_function_from_an_expression_to_run_time(allowlist_env):
    allowlist_env("test.*")
    for input_ in ({"fun": "test.try", "kwarg": {"module": "<% $.m %>"}},
                   {"fun": "test.try", "kwarg": "<% $.kw %>"},
                   {"fun": "test.try", "arg": ["<% $.a %>"], "kwarg": {"module": "test.ping"}},
                   {"fun": "test.cross_test", "arg": "<% $.args %>"}):
        dsl.load(workflow("salt.cmd", {"tgt": "vm-1", **input_}))


# -- the table against Salt's own modules -------------------------------------------------------
def _salt_modules() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("salt")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("salt is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "modules"


def _functions(path: Path) -> tuple[str, dict[str, ast.FunctionDef]]:
    """A Salt module's name as the loader exposes it, and its public functions by name."""
    tree = ast.parse(path.read_text())
    name, aliases = path.stem, {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            target = node.targets[0].id
            if target == "__virtualname__" and isinstance(node.value, ast.Constant):
                name = node.value.value
            elif target == "__func_alias__":
                aliases = ast.literal_eval(node.value)
    return name, {aliases.get(n.name, n.name): n for n in tree.body
                  if isinstance(n, ast.FunctionDef)}


def test_the_tables_signatures_and_template_positions_are_salts():
    modules = _salt_modules()
    for fun, entry in allowlist.INDIRECT.items():
        file, _, pyname = entry.source.partition(":")
        _, functions = _functions(modules / file)
        node = next(n for n in functions.values() if n.name == pyname)
        a = node.args
        params = tuple(p.arg for p in a.posonlyargs + a.args)
        if entry.kind == "calls":
            assert (params, bool(a.vararg), bool(a.kwarg)) == \
                (entry.params, entry.varargs, entry.varkw), fun
        if entry.kind == "template":
            assert params.index("template") == entry.template_at, fun


def _dynamic(node: ast.AST) -> bool:
    """Calls a function looked up by a computed name, uses a client of the master, or
    renders with a template engine."""
    for n in ast.walk(node):
        if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name) and \
                n.value.id == "__salt__" and not isinstance(n.slice, ast.Constant):
            return True
        if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Attribute) and \
                n.value.attr == "functions":
            return True
        if isinstance(n, ast.Attribute) and n.attr in {
                "LocalClient", "get_local_client", "Caller", "RunnerClient", "WheelClient",
                "MasterMinion", "SSHClient", "render", "compile_template", "TEMPLATE_REGISTRY",
                "call_function"}:
            return True
    return False


def test_every_salt_function_that_looks_up_a_function_or_renders_is_in_the_table_or_reviewed():
    found = set()
    for path in sorted(_salt_modules().glob("*.py")):
        name, functions = _functions(path)
        private = {n.name: n for n in functions.values() if n.name.startswith("_")}

        def reaches(node, seen, private=private):
            if _dynamic(node):
                return True
            for call in ast.walk(node):
                if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and \
                        call.func.id in private and call.func.id not in seen:
                    seen.add(call.func.id)
                    if reaches(private[call.func.id], seen):
                        return True
            return False

        for public, node in functions.items():
            if not node.name.startswith("_") and reaches(node, {node.name}):
                found.add(f"{name}.{public}")
    assert {"test.try", "test.cross_test", "saltutil.cmd", "mine.send", "snapper.run"} <= found
    missing = sorted(found - set(allowlist.INDIRECT) - set(allowlist.REVIEWED))
    assert not missing, f"read these Salt functions and add them to INDIRECT or REVIEWED: {missing}"


# -- with a real minion (the session's lab) -----------------------------------------------------
def _upload(store, text: str):
    app = create_app(ApiConfig(store=store, no_auth=True))
    return app.test_client().post("/v2/workflows", data=text.encode(), content_type="text/plain")


@pytest.mark.parametrize("fun, kwarg", [
    ("test.try", {"module": "cmd.run", "cmd": "touch {marker}"}),
    ("test.cross_test", {"func": "cmd.run", "args": ["touch {marker}"]}),
])
def test_an_indirect_cmd_run_is_refused_at_upload_and_at_run_time_and_never_runs(
        salt_lab, sqlite_store, tmp_path, allowlist_env, monkeypatch, fun, kwarg):
    def with_marker(marker):
        return {k: (v.format(marker=marker) if isinstance(v, str) else
                    [x.format(marker=marker) for x in v] if isinstance(v, list) else v)
                for k, v in kwarg.items()}

    # Validation: a workflow that names the inner function literally cannot be uploaded.
    allowlist_env("test.*")
    response = _upload(sqlite_store, workflow("salt.cmd", {
        "tgt": "vm-1", "fun": fun, "kwarg": with_marker(tmp_path / "uploaded")}))
    assert response.status_code == 400, response.get_json()
    assert f"Salt function '{fun}' would call 'cmd.run'" in response.get_data(as_text=True)
    monkeypatch.delenv("ORCH_SALT_ALLOWLIST")
    config.reset()

    # Run time: the function and its arguments come from the execution's input, so
    # validation cannot see them; project "narrow" may call test.* only.
    engine = AgentEngine(sqlite_store, salt_lab.master_config,
                         projects={"narrow": ("test.*",)})
    text = workflow("salt.cmd", {"tgt": "vm-1", "fun": "<% $.fun %>", "kwarg": "<% $.args %>"})
    refused, ran = tmp_path / "refused", tmp_path / "ran"
    try:
        ex = engine.start(text, {"fun": fun, "args": with_marker(refused)}, project="narrow")
        out = engine.wait(ex)
        action = engine.action(ex)
        # The same call where cmd.run is allowed does create the marker: the proof works.
        control_run = engine.run(text, {"fun": fun, "args": with_marker(ran)})
    finally:
        engine.close()
    assert out["state"] == "ERROR"
    info = out["tasks"][0]["state_info"]
    assert f"Salt function '{fun}' would call 'cmd.run'" in info
    assert "'cmd.run' is not in project 'narrow''s allowlist (test.*)" in info
    assert not (action["external_ref"] or {}).get("jid"), "a job was published"
    assert control_run["state"] == "SUCCESS", control_run["state_info"]
    assert ran.exists()
    assert not refused.exists(), "the minion ran the refused command"


def test_test_try_and_cross_test_calling_an_allowed_function_run_on_the_minion(salt_lab,
                                                                             sqlite_store):
    engine = AgentEngine(sqlite_store, salt_lab.master_config,
                         projects={"narrow": ("test.*",)})
    try:
        tried = engine.run(workflow("salt.cmd", {
            "tgt": "vm-1", "fun": "test.try",
            "kwarg": {"module": "test.arg_clean", "value": 1}}), project="narrow")
        crossed = engine.run(workflow("salt.cmd", {
            "tgt": "vm-1", "fun": "<% $.fun %>", "arg": "<% $.args %>"}),
            {"fun": "test.cross_test", "args": ["test.echo", ["hello"]]}, project="narrow")
    finally:
        engine.close()
    assert tried["state"] == "SUCCESS", tried["state_info"]
    assert tried["tasks"][0]["result"] == {
        "vm-1": {"retcode": 0, "return": {"args": [], "kwargs": {"value": 1}}}}
    assert crossed["state"] == "SUCCESS", crossed["state_info"]
    assert crossed["tasks"][0]["result"] == {"vm-1": {"retcode": 0, "return": "hello"}}


def test_a_comma_form_of_fun_from_an_expression_fails_the_task_unpublished(salt_lab,
                                                                          sqlite_store):
    engine = AgentEngine(sqlite_store, salt_lab.master_config)
    try:
        ex = engine.start(workflow("salt.cmd", {"tgt": "vm-1", "fun": "<% $.fun %>"}),
                          {"fun": "test.ping,cmd.script"})
        out = engine.wait(ex)
        action = engine.action(ex)
    finally:
        engine.close()
    assert out["state"] == "ERROR"
    assert "'test.ping,cmd.script' is not a single Salt function name" in \
        out["tasks"][0]["state_info"]
    assert not (action["external_ref"] or {}).get("jid")
