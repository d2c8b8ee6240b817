import logging
import textwrap

import pytest

from orchestrator.actions import registry, std
from orchestrator.actions.base import Action
from orchestrator.errors import NotFound


@pytest.fixture(autouse=True)
def fresh_registry():
    registry.reload()
    yield
    registry.reload()


def test_std_actions_are_registered():
    assert {"std.noop", "std.echo", "std.fail", "std.sleep", "std.async_noop",
            "std.http"} <= set(registry.names())
    assert registry.names() == sorted(registry.names())
    assert registry.get("std.echo") is std.Echo
    assert registry.find("std.nope") is None


def test_unknown_action_suggests_the_closest_names():
    with pytest.raises(NotFound) as exc:
        registry.get("std.ech")
    assert exc.value.message == "unknown action 'std.ech' (did you mean 'std.echo'?)"
    assert exc.value.status_code == 404
    with pytest.raises(NotFound) as exc:
        registry.get("completely.different")
    assert "did you mean" not in exc.value.message


@pytest.mark.parametrize("name, expected", [
    ("std.noop", ([], {}, False)),
    ("std.async_noop", ([], {}, False)),
    ("std.echo", (["output"], {"delay": 0}, False)),
    ("std.fail", ([], {"error_data": None}, False)),
    ("std.sleep", ([], {"seconds": 1}, False)),
])
def test_params_lists_required_and_optional_input(name, expected):
    assert registry.params(registry.get(name)) == expected


def test_params_of_std_http():
    required, optional, var_kw = registry.params(registry.get("std.http"))
    assert required == ["url"]
    assert optional["method"] == "GET" and optional["timeout"] == 60
    assert set(optional) == {"method", "params", "body", "json", "headers", "auth", "timeout",
                             "verify", "allow_redirects"}
    assert var_kw is False


class Greet(Action):
    def __init__(self, who, greeting="hello", **extra):
        self.who, self.greeting = who, greeting

    def run(self, context):
        return f"{self.greeting} {self.who}"


def test_registering_a_custom_action():
    registry.register("my.greet", Greet)
    try:
        assert registry.get("my.greet") is Greet
        assert "my.greet" in registry.names()
        assert registry.params(Greet) == (["who"], {"greeting": "hello"}, True)
        registry.reload()  # a rescan of the entry points keeps it
        assert registry.find("my.greet") is Greet
    finally:
        registry.unregister("my.greet")
    assert registry.find("my.greet") is None


def test_register_rejects_what_is_not_an_action():
    with pytest.raises(TypeError):
        registry.register("my.bad", object)


def _install_plugin(tmp_path, monkeypatch, module, entries):
    """A real installed distribution: a module and a dist-info with entry_points.txt."""
    (tmp_path / f"{module}.py").write_text(textwrap.dedent("""
        from orchestrator.actions.base import Action

        class Deploy(Action):
            def __init__(self, target, dry_run=False):
                self.target, self.dry_run = target, dry_run

            def run(self, context):
                return {"deployed": self.target}

        NOT_AN_ACTION = 42
    """))
    dist = tmp_path / f"{module}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entries)
    (dist / "entry_points.txt").write_text(f"[orchestrator.actions]\n{lines}\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def test_actions_from_entry_points_are_loaded(tmp_path, monkeypatch):
    _install_plugin(tmp_path, monkeypatch, "orch_plugin_ok",
                    [("acme.deploy", "orch_plugin_ok:Deploy")])
    cls = registry.get("acme.deploy")
    assert cls.__name__ == "Deploy"
    assert registry.params(cls) == (["target"], {"dry_run": False}, False)
    assert cls(target="web").run(None) == {"deployed": "web"}


def test_a_broken_plugin_is_skipped_with_a_warning(tmp_path, monkeypatch, caplog):
    _install_plugin(tmp_path, monkeypatch, "orch_plugin_mixed", [
        ("acme.deploy", "orch_plugin_mixed:Deploy"),
        ("acme.missing", "orch_plugin_mixed:NoSuchClass"),
        ("acme.gone", "no_such_module_anywhere:Thing"),
        ("acme.number", "orch_plugin_mixed:NOT_AN_ACTION"),
    ])
    with caplog.at_level(logging.WARNING, logger="orchestrator.actions.registry"):
        names = registry.names()
    assert "acme.deploy" in names and "std.echo" in names
    assert not {"acme.missing", "acme.gone", "acme.number"} & set(names)
    skipped = " ".join(r.getMessage() for r in caplog.records)
    assert "acme.missing" in skipped and "acme.gone" in skipped and "acme.number" in skipped


@pytest.mark.parametrize("typo, expected", [
    ("std.htp", ["std.http"]), ("echo", ["std.echo"]), ("std.sleeep", ["std.sleep"]),
    ("std.async_nop", ["std.async_noop"]), ("deploy", []),
])
def test_suggestions_are_few_and_close(typo, expected):
    assert registry.suggestions(typo) == expected
