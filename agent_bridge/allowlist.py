"""Which Salt calls the allowlist lets through: exact function names, globs that never
cross ``,`` or whitespace, and functions that call other functions checked on the
function they would call.

**Names.** A function is a single well-formed Salt name, ``module.function``: letters,
digits and underscores, segments joined by dots. Anything else is refused before it is
matched: a list of functions (Salt's compound jobs), a comma-separated form such as
``test.ping,cmd.script``, whitespace, quotes, globs. Names are case-sensitive.

**Globs.** An allowlist entry is a name where ``*`` stands for any run of name characters
(dots included), ``?`` for one, and ``[...]``/``[!...]`` for one of (or none of) a set.
None of them can match ``,``, whitespace or anything else a name cannot hold, and an entry
must match the whole name. An entry with any other character is refused when the
configuration is read.

**Functions that call other functions** (:data:`INDIRECT`, built from reading Salt
3007.10's execution modules, ``salt/modules/*.py``). Allowing such a function by a glob
(``test.*`` allows ``test.try``) does not allow what it calls:

* ``calls``: the function calls the one named by an argument of the call. That name is
  found the way the minion binds the call (``key=value`` strings and ``__kwarg__``
  mappings in ``arg`` are keyword arguments, as ``salt.minion.load_args_and_kwargs`` makes
  them) and checked, with the arguments it would get, exactly as a call of its own: allowed,
  and checked again if it is itself in this table. When the name cannot be read from the
  call (missing, not a string, a dynamic form), the call is refused.
* ``refused``: what the function would run cannot be read from the call (a runner on the
  master, a state function, a scheduled job, an event the minion or the master acts on, a
  template given in the call): always refused, whatever the allowlist says.
* ``template``: the function renders its input with one of Salt's template engines when
  its ``template`` argument is set, and a template can call any Salt function; refused with
  that argument.

The shell-running functions (``cmd.run``, ``cmd.script``, ...) are not in the table: they
run any command as the minion's user, so allowing one of them allows everything.
:data:`REVIEWED` lists the functions of Salt's modules that look up a function by a name
or render a template, but are not in the table, and why. A test scans Salt's modules and
fails when it finds one in neither, so a new Salt release is read again.

This module does not import salt: validation runs in processes without it.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

NAME_RE = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)+")
_GLOB_CHARS = re.compile(r"[A-Za-z0-9_.*?\[\]!-]+")
_NAME_CHAR = "[A-Za-z0-9_.]"
# salt.utils.args.KWARG_REGEX: "name=value" strings in a job's arguments are keyword arguments.
_KWARG_RE = re.compile(r"^([^\d\W][\w.-]*)=(?!=)(.*)$", re.UNICODE)
MAX_DEPTH = 8  # calls through calls through ... deeper than this are refused


class GlobError(ValueError):
    """An allowlist entry that is not a glob of function names."""


def well_formed(fun: Any) -> bool:
    return isinstance(fun, str) and NAME_RE.fullmatch(fun) is not None


@lru_cache(maxsize=512)
def compile_glob(glob: str) -> re.Pattern:
    """The regular expression matching exactly the names ``glob`` matches."""
    if not isinstance(glob, str) or not _GLOB_CHARS.fullmatch(glob):
        raise GlobError(f"{glob!r} is not a glob of Salt function names: it may hold only "
                        "letters, digits, '_', '.', '-' and the wildcards '*', '?' and "
                        "'[...]' (separate entries with commas, not spaces)")
    out, i = [], 0
    while i < len(glob):
        c = glob[i]
        if c == "*":
            out.append(_NAME_CHAR + "*")
        elif c == "?":
            out.append(_NAME_CHAR)
        elif c == "[":
            start = i + 2 if glob[i + 1:i + 2] == "!" else i + 1
            end = glob.find("]", start + 1)  # a ']' right after '[' or '[!' is a member
            if end < 0:
                raise GlobError(f"{glob!r}: '[' without its ']'")
            members = glob[start:end]
            if "[" in members or "!" in members:
                raise GlobError(f"{glob!r}: a set holds only name characters and ranges")
            members = re.sub(r"([\]\\^])", r"\\\1", members)
            negate = "^" if glob[i + 1] == "!" else ""
            out.append(f"(?={_NAME_CHAR})[{negate}{members}]")
            i = end
        elif c in "]!":
            raise GlobError(f"{glob!r}: {c!r} outside a '[...]' set")
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def matches(fun: str, globs: tuple[str, ...]) -> bool:
    """Whether the well-formed name ``fun`` matches one of ``globs`` as a whole."""
    return well_formed(fun) and any(compile_glob(g).fullmatch(fun) for g in globs)


# -- refusals ---------------------------------------------------------------------------------
class Refused(Exception):
    """A call the allowlist refuses. ``via``: the calls that lead to the refused one, each
    "'test.try' would call 'cmd.run' (its 'module' argument)"; ``fun``: the refused function;
    ``kind``: "malformed", "not_allowed" or "refused"; ``reason``: why (for the last two)."""

    def __init__(self, kind: str, fun: Any, reason: str = ""):
        super().__init__(reason)
        self.kind, self.fun, self.reason = kind, fun, reason
        self.via: list[str] = []


class Deferred(Exception):
    """The call cannot be judged yet: part of it is an expression (validation only)."""


class Unknown:
    """Stands for a value that is an expression, while a workflow is validated."""

    def __repr__(self) -> str:
        return "<expression>"


UNKNOWN = Unknown()
_MISSING = object()


def _has_unknown(value) -> bool:
    if value is UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(_has_unknown(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_unknown(v) for v in value)
    return False


@dataclass(frozen=True)
class Call:
    """A call an indirect function would make: ``args``/``kwargs`` None when they cannot be
    read from the outer call; ``published``: it reaches the function as a Salt job (whose
    arguments the minion parses), not as a direct Python call."""

    fun: Any
    how: str
    args: list | None = None
    kwargs: dict | None = None
    published: bool = False


class Bound:
    """A call's arguments bound to the Salt function's parameters, as Python would bind them
    after the minion has parsed a job's arguments."""

    def __init__(self, fun: str, entry: Indirect, args, kwargs, published: bool):
        if args is UNKNOWN or kwargs is UNKNOWN:
            raise Deferred
        if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
            raise Refused("refused", fun, "its arguments are not a list and a mapping, so "
                          "what it would call cannot be read")
        self.fun = fun
        self.from_string: set[str] = set()  # keyword values given as "key=value" strings
        params = entry.params
        positional: list = []
        keywords: dict = {}
        if published:  # as salt.minion.load_args_and_kwargs parses a job's arguments
            items = list(args) + ([{"__kwarg__": True, **kwargs}] if kwargs else [])
            for item in items:
                if isinstance(item, dict) and item.get("__kwarg__") is True:
                    for key, value in item.items():
                        if key != "__kwarg__":
                            keywords[key] = value
                            self.from_string.discard(key)
                elif item is UNKNOWN:
                    raise Deferred  # an expression may become "key=value"
                elif isinstance(item, str) and _KWARG_RE.match(item):
                    key, raw = _KWARG_RE.match(item).groups()
                    keywords[key] = raw  # the minion YAML-loads it; a plain name stays a name
                    self.from_string.add(key)
                else:
                    positional.append(item)
        else:
            positional, keywords = list(args), dict(kwargs)
        self.values: dict[str, Any] = {}
        self.extra_args: list = []
        self.extra_kwargs: dict[str, Any] = {}
        for i, value in enumerate(positional):
            if i < len(params):
                self.values[params[i]] = value
            elif entry.varargs:
                self.extra_args.append(value)
            else:
                raise Refused("refused", fun, f"it takes at most {len(params)} positional "
                              "argument(s)")
        for key, value in keywords.items():
            if key in params:
                if key in self.values:
                    raise Refused("refused", fun, f"its {key!r} argument is given twice")
                self.values[key] = value
            elif entry.varkw:
                self.extra_kwargs[key] = value
            else:
                raise Refused("refused", fun, f"it takes no {key!r} argument")

    def get(self, param: str, default=None):
        value = self.values.get(param, self.extra_kwargs.get(param, default))
        if _has_unknown(value):
            raise Deferred
        return value

    def name(self, param: str, default=_MISSING) -> str:
        """The function name in argument ``param``; refused when it is not one."""
        value = self.get(param, default)
        if value is _MISSING or value is None or value == "":
            raise Refused("refused", self.fun, f"it calls the function named by its {param!r} "
                          "argument, which is missing, so what it would call cannot be checked")
        if not isinstance(value, str):
            raise Refused("refused", self.fun, f"its {param!r} argument is not a function name "
                          f"(got {value!r}), so what it would call cannot be checked")
        return value

    def list(self, param: str) -> list | None:
        """A list argument passed on to the inner function ([] when not given); None when
        it cannot be read here."""
        value = self.get(param)
        if value is None:
            return []
        if param in self.from_string or not isinstance(value, list | tuple):
            return None
        return list(value)

    def mapping(self, param: str) -> dict | None:
        """A mapping argument passed on ({} when not given); None when it cannot be read."""
        value = self.get(param)
        if value is None:
            return {}
        if param in self.from_string or not isinstance(value, dict):
            return None
        return dict(value)


# -- the table --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Indirect:
    """One Salt function that calls other functions. ``source``: where Salt 3007.10 defines
    it; ``kind``: "calls", "refused" or "template"; ``argument``: what names the function it
    calls (calls), or why it is refused (refused); ``params``/``varargs``/``varkw``: its
    signature, to bind a call; ``inner``: the calls it would make (calls); ``template_at``:
    the position of its ``template`` argument (template)."""

    source: str
    kind: str
    argument: str
    params: tuple[str, ...] = ()
    varargs: bool = False
    varkw: bool = False
    inner: Callable[[Bound], list[Call]] | None = None
    template_at: int = -1


def _named(param: str, *, args: str | None = None, kwargs: str | None = None,
           extra: bool = False, published: bool = False, skip: tuple[str, ...] = ()):
    """The call of the function named by ``param``, with the list in ``args`` and the mapping in
    ``kwargs`` as its arguments, or (``extra``) the outer call's own extra arguments less
    ``skip``; without either its arguments cannot be read (None)."""

    def inner(b: Bound) -> list[Call]:
        fun = b.name(param)
        call_args = call_kwargs = None
        if extra:
            call_args = list(b.extra_args)
            call_kwargs = {k: v for k, v in b.extra_kwargs.items() if k not in skip}
            if any(k in b.from_string for k in call_kwargs):
                call_args = call_kwargs = None
        elif args is not None:
            call_args = b.list(args)
            call_kwargs = b.mapping(kwargs) if kwargs else {}
            if call_args is None or call_kwargs is None:
                call_args = call_kwargs = None
        return [Call(fun, f"its {param!r} argument", call_args, call_kwargs, published)]

    return inner


def _prefixed(param: str, prefix: str, *, always: bool = False, suffix: str = ""):
    """napalm.netmiko_fun and napalm.junos_call call ``prefix + value`` unless the value holds
    the prefix; nxos.cmd and keystoneng.get_entity always build the name."""

    def inner(b: Bound) -> list[Call]:
        value = b.name(param)
        fun = value if not always and prefix in value else f"{prefix}{value}{suffix}"
        return [Call(fun, f"{prefix}{{{param}}}{suffix} from its {param!r} argument")]

    return inner


def _publish(b: Bound) -> list[Call]:
    fun = b.name("fun")
    arg = b.get("arg")
    # publish._parse_args YAML-loads a string: only a list is read here.
    args = list(arg) if isinstance(arg, list) and "arg" not in b.from_string else \
        ([] if arg is None else None)
    return [Call(fun, "its 'fun' argument", args, {} if args is not None else None,
                 published=True)]


def _mine_send(b: Bound) -> list[Call]:
    # mine.send pops mine_function from its kwargs; without it, it calls ``name``.
    mine_function = b.get("mine_function")
    if mine_function:
        return [Call(b.name("mine_function"), "its 'mine_function' argument")]
    return [Call(b.name("name"), "its 'name' argument (no 'mine_function' given)")]


def _mine_update(b: Bound) -> list[Call]:
    functions = b.get("mine_functions")
    if not functions:
        raise Refused("refused", b.fun, "without 'mine_functions' it runs the mine functions "
                      "configured on the minion, which the call does not show")
    if "mine_functions" in b.from_string:
        raise Refused("refused", b.fun, "its 'mine_functions' given as a 'key=value' string "
                      "cannot be read here")
    if isinstance(functions, list):
        return [Call(f, "an entry of its 'mine_functions' argument") for f in functions]
    if not isinstance(functions, dict):
        raise Refused("refused", b.fun, "its 'mine_functions' is neither a list nor a mapping")
    calls = []
    for alias, definition in functions.items():
        # salt.utils.mine.parse_function_definition: a 'mine_function' key names the function
        # (in a mapping, or in a mapping inside a list); otherwise the alias is the name.
        name = None
        if isinstance(definition, dict):
            name = definition.get("mine_function")
        elif isinstance(definition, list):
            for item in definition:
                if isinstance(item, dict) and "mine_function" in item:
                    name = item["mine_function"]
        calls.append(Call(name or alias, f"the entry {alias!r} of its 'mine_functions'"))
    return calls


def _schedule(b: Bound) -> list[Call]:
    return [Call(b.name("function"), "its 'function' argument (the scheduled job)")]


def _saltcheck(b: Bound) -> list[Call]:
    test = b.get("test")
    if not isinstance(test, dict) or "test" in b.from_string:
        raise Refused("refused", b.fun, "its 'test' argument is not a mapping, so the function "
                      "it would call cannot be read")
    fun = test.get("module_and_function")
    if not isinstance(fun, str) or not fun:
        raise Refused("refused", b.fun, "its test has no 'module_and_function'")
    return [Call(fun, "the 'module_and_function' of its 'test' argument")]


def _lxc_init(b: Bound) -> list[Call]:
    if b.get("seed_cmd") is None:
        raise Refused("refused", b.fun, "without 'seed_cmd' it may run the seed function of "
                      "the LXC profile, which the call does not show; give 'seed_cmd'")
    return [Call(b.name("seed_cmd"), "its 'seed_cmd' argument")]


def _virt_init(b: Bound) -> list[Call]:
    if b.get("seed", True) is False:
        return []
    return [Call(b.name("seed_cmd", "seed.apply"), "its 'seed_cmd' argument (default "
                 "seed.apply)")]


def _calls(source, argument, params, inner, *, varargs=False, varkw=False) -> Indirect:
    return Indirect(source, "calls", argument, tuple(params), varargs, varkw, inner)


def _refused(source, reason) -> Indirect:
    return Indirect(source, "refused", reason)


def _template(source, at) -> Indirect:
    return Indirect(source, "template", "its 'template' argument", template_at=at)


_RUNNER = "it runs a runner function on the master, which the allowlist (of execution " \
          "functions) cannot allow"
_STATES = "it runs state functions given in the call, which the allowlist (of execution " \
          "functions) cannot allow"
_RENDERS = "it renders a template given in the call, and a template can call any Salt function"

INDIRECT: dict[str, Indirect] = {
    # salt/modules/test.py
    "test.try": _calls("test.py:try_", "module", ("module", "return_try_exception"),
                       _named("module", extra=True), varkw=True),
    "test.cross_test": _calls("test.py:cross_test", "func", ("func", "args"),
                              _named("func", args="args")),
    # salt/modules/saltutil.py
    "saltutil.cmd": _calls("saltutil.py:cmd", "fun",
                           ("tgt", "fun", "arg", "timeout", "tgt_type", "ret", "kwarg", "ssh"),
                           _named("fun", args="arg", kwargs="kwarg", published=True),
                           varkw=True),
    "saltutil.cmd_iter": _calls("saltutil.py:cmd_iter", "fun",
                                ("tgt", "fun", "arg", "timeout", "tgt_type", "ret", "kwarg",
                                 "ssh"), _named("fun", args="arg", kwargs="kwarg", published=True),
                                varkw=True),
    "saltutil.mmodule": _calls("saltutil.py:mmodule", "fun", ("saltenv", "fun"),
                               _named("fun", extra=True), varargs=True, varkw=True),
    "saltutil.runner": _refused("saltutil.py:runner", _RUNNER),
    "saltutil.wheel": _refused("saltutil.py:wheel", "it runs a wheel function on the master "
                               "(keys, configuration), which the allowlist cannot allow"),
    # salt/modules/publish.py (peer publishing through the master)
    "publish.publish": _calls("publish.py:publish", "fun",
                              ("tgt", "fun", "arg", "tgt_type", "returner", "timeout",
                               "via_master"), _publish),
    "publish.full_data": _calls("publish.py:full_data", "fun",
                                ("tgt", "fun", "arg", "tgt_type", "returner", "timeout"),
                                _publish),
    "publish.runner": _refused("publish.py:runner", _RUNNER),
    # salt/modules/mine.py
    "mine.send": _calls("mine.py:send", "mine_function, else name", ("name",), _mine_send,
                        varargs=True, varkw=True),
    "mine.update": _calls("mine.py:update", "each function of mine_functions",
                          ("clear", "mine_functions"), _mine_update),
    # salt/modules/schedule.py
    "schedule.add": _calls("schedule.py:add", "function", ("name",), _schedule, varkw=True),
    "schedule.modify": _calls("schedule.py:modify", "function", ("name",), _schedule,
                              varkw=True),
    "schedule.run_job": _refused("schedule.py:run_job", "it runs a scheduled job whose "
                                 "function the call does not show"),
    "schedule.copy": _refused("schedule.py:copy", "it copies a scheduled job, whose function "
                              "the call does not show, to other minions"),
    "schedule.move": _refused("schedule.py:move", "it moves a scheduled job, whose function "
                              "the call does not show, to other minions"),
    # salt/modules/event.py
    "event.fire": _refused("event.py:fire", "the minion acts on events on its own bus "
                           "('manage_schedule' schedules any function)"),
    "event.fire_master": _refused("event.py:fire_master", "reactors on the master may run "
                                  "any function on an event"),
    "event.send": _refused("event.py:send", "reactors on the master may run any function on "
                           "an event"),
    # salt/modules/state.py (states run from the master's file roots, state.apply,
    # state.sls, state.highstate, are not indirect calls given in the call)
    "state.single": _refused("state.py:single", _STATES),
    "state.low": _refused("state.py:low", _STATES),
    "state.high": _refused("state.py:high", _STATES),
    "state.template": _refused("state.py:template", _STATES),
    "state.template_str": _refused("state.py:template_str", _STATES),
    "state.pkg": _refused("state.py:pkg", _STATES),
    "transactional_update.single": _refused("transactional_update.py:single", _STATES),
    # functions that run a named function elsewhere
    "snapper.run": _calls("snapper.py:run", "function", ("function",),
                          _named("function"), varargs=True, varkw=True),
    "chroot.call": _calls("chroot.py:call", "function", ("root", "function"),
                          _named("function"), varargs=True, varkw=True),
    "transactional_update.call": _calls("transactional_update.py:call", "function",
                                        ("function",), _named("function"), varargs=True,
                                        varkw=True),
    "saltcheck.run_test": _calls("saltcheck.py:run_test", "test['module_and_function']", (),
                                 _saltcheck, varkw=True),
    "napalm.netmiko_fun": _calls("napalm_mod.py:netmiko_fun", "fun (netmiko.<fun>)", ("fun",),
                                 _prefixed("fun", "netmiko."), varargs=True, varkw=True),
    "napalm.junos_call": _calls("napalm_mod.py:junos_call", "fun (junos.<fun>)", ("fun",),
                                _prefixed("fun", "junos."), varargs=True, varkw=True),
    "nxos.cmd": _calls("nxos.py:cmd", "command (nxos.<command>)", ("command",),
                       _prefixed("command", "nxos.", always=True), varargs=True, varkw=True),
    "keystoneng.get_entity": _calls("keystoneng.py:get_entity",
                                    "ent_type (keystoneng.<ent_type>_get)", ("ent_type",),
                                    _prefixed("ent_type", "keystoneng.", always=True,
                                              suffix="_get"), varkw=True),
    "lxc.init": _calls("lxc.py:init", "seed_cmd", (
        "name", "config", "cpuset", "cpushare", "memory", "profile", "network_profile",
        "nic_opts", "cpu", "autostart", "password", "password_encrypted", "users",
        "dnsservers", "searchdomains", "bridge", "gateway", "pub_key", "priv_key",
        "force_install", "unconditional_install", "bootstrap_delay", "bootstrap_args",
        "bootstrap_shell", "bootstrap_url"), _lxc_init, varkw=True),
    "virt.init": _calls("virt.py:init", "seed_cmd (default seed.apply)", (
        "name", "cpu", "mem", "nic", "interfaces", "hypervisor", "start", "disk", "disks",
        "saltenv", "seed", "install", "pub_key", "priv_key", "seed_cmd", "graphics", "os_type",
        "arch", "boot", "boot_dev", "numatune", "hypervisor_features", "clock", "serials",
        "consoles", "stop_on_reboot", "host_devices"), _virt_init, varkw=True),
    "container_resource.run": _refused("container_resource.py:run", "its 'container_type' "
                                       "chooses the module whose functions it calls"),
    "container_resource.copy_to": _refused("container_resource.py:copy_to", "its "
                                           "'container_type' chooses the module whose "
                                           "functions it calls"),
    "highstate_doc.render": _refused("highstate_doc.py:render", "it renders a template given "
                                     "in the call and calls its 'jinja_template_function'"),
    "highstate_doc.process_lowstates": _refused("highstate_doc.py:process_lowstates", "it "
                                                "calls the 'processor' function given in the "
                                                "call or the minion's configuration"),
    # template renderers whose template is the call's input
    "slsutil.renderer": _refused("slsutil.py:renderer", _RENDERS),
    "file.apply_template_on_contents": _refused("file.py:apply_template_on_contents",
                                                _RENDERS),
    "cp.get_template": _refused("cp.py:get_template", _RENDERS),
    "net.load_template": _refused("napalm_network.py:load_template", _RENDERS),
    # a `template` argument renders the input (file names, sources) with a template engine
    "archive.tar": _template("archive.py:tar", 5),
    "archive.gzip": _template("archive.py:gzip", 1),
    "archive.gunzip": _template("archive.py:gunzip", 1),
    "archive.cmd_zip": _template("archive.py:cmd_zip", 2),
    "archive.zip": _template("archive.py:zip_", 2),
    "archive.cmd_unzip": _template("archive.py:cmd_unzip", 4),
    "archive.unzip": _template("archive.py:unzip", 4),
    "archive.rar": _template("archive.py:rar", 2),
    "archive.unrar": _template("archive.py:unrar", 3),
    "cp.get_file": _template("cp.py:get_file", 4),
    "cp.get_dir": _template("cp.py:get_dir", 3),
    "debconf.set_template": _template("debconfmod.py:set_template", 1),
    "pkgbuild.build": _template("rpmbuild_pkgbuild.py:build", 7),
    "pkgbuild.make_src_pkg": _template("rpmbuild_pkgbuild.py:make_src_pkg", 4),
    "file.get_managed": _template("file.py:get_managed", 1),
    "file.check_managed": _template("file.py:check_managed", 8),
    "file.check_managed_changes": _template("file.py:check_managed_changes", 8),
    "file.get_diff": _template("file.py:get_diff", 5),
    "file.manage_file": _template("file.py:manage_file", 12),
    "kubernetes.create_deployment": _template("kubernetesmod.py:create_deployment", 5),
    "kubernetes.create_pod": _template("kubernetesmod.py:create_pod", 5),
    "kubernetes.create_service": _template("kubernetesmod.py:create_service", 5),
    "kubernetes.create_secret": _template("kubernetesmod.py:create_secret", 4),
    "kubernetes.create_configmap": _template("kubernetesmod.py:create_configmap", 4),
    "kubernetes.replace_deployment": _template("kubernetesmod.py:replace_deployment", 4),
    "kubernetes.replace_service": _template("kubernetesmod.py:replace_service", 4),
    "kubernetes.replace_secret": _template("kubernetesmod.py:replace_secret", 3),
    "kubernetes.replace_configmap": _template("kubernetesmod.py:replace_configmap", 3),
}
# salt/modules/dockermod.py is loaded as docker, dockerng and moby.
for _alias in ("docker", "dockerng", "moby"):
    INDIRECT[f"{_alias}.call"] = _calls("dockermod.py:call", "function", ("name", "function"),
                                        _named("function"), varargs=True, varkw=True)
    INDIRECT[f"{_alias}.script"] = _template("dockermod.py:script", 4)
    INDIRECT[f"{_alias}.script_retcode"] = _template("dockermod.py:script_retcode", 4)

# Functions of Salt 3007.10's execution modules that look a function up by a name, use a
# client of the master, or render a template, but are not in INDIRECT: why.
_RUNS_ANYTHING = "runs any shell command; its 'template' adds nothing to that"
_FIXED = "the functions it calls are fixed by the module or chosen by the minion's " \
         "configuration or grains, not by the call"
REVIEWED: dict[str, str] = {
    **{f"cmd.{f}": _RUNS_ANYTHING for f in (
        "run", "run_stdout", "run_stderr", "run_all", "retcode", "script", "script_retcode",
        "run_bg", "shell", "run_chroot", "powershell", "powershell_all", "exec_code",
        "exec_code_all")},
    "test.module_report": "lists the loaded functions without calling them",
    "test.provider": "returns the file that provides a function without calling it",
    "sys.doc": "reads docstrings only",
    "sys.runner_doc": "reads docstrings only",
    "sys.renderer_doc": "reads docstrings only",
    "sys.list_renderers": "lists renderers only",
    "mount.active": _FIXED,
    "nagios.run": _FIXED,
    "nagios.retcode": _FIXED,
    "nagios.run_all": _FIXED,
    "napalm.rpc": _FIXED,
    "status.custom": _FIXED,
    "state.sls": "syncs the fixed saltutil.sync_* functions; the states come from the "
                 "master's file roots",
    "saltcheck.state_apply": "runs state.apply of the master's file roots",
    "jinja.load_map": "renders a file of the master's file server, not the call's input",
    "jinja.import_yaml": "renders a file of the master's file server, not the call's input",
    "jinja.import_json": "renders a file of the master's file server, not the call's input",
    "pkg.genrepo": "renders the package repository's own files",
    "winrepo.show_sls": "renders the package repository's own files",
    "scp.get": "an SSH client (paramiko), not a Salt client",
    "scp.put": "an SSH client (paramiko), not a Salt client",
    **{f"ip.{f}": "renders the network templates that ship with Salt" for f in (
        "build_bond", "build_interface", "build_routes", "get_interface",
        "get_network_settings", "build_network_settings")},
    **{f"virt.{f}": "renders the libvirt XML templates that ship with Salt" for f in (
        "update", "network_define", "network_update", "pool_define", "pool_update",
        "volume_define")},
}


# -- the check ----------------------------------------------------------------------------------
def check(fun: Any, args=(), kwargs=None, *, allowed: Callable[[str], bool],
          published: bool = True, depth: int = 0) -> None:
    """Raise :class:`Refused` when the call ``fun(*args, **kwargs)`` (a Salt job when
    ``published``, else a direct call inside another function) is not allowed, or
    :class:`Deferred` when an :data:`UNKNOWN` part leaves it undecided."""
    if fun is UNKNOWN:
        raise Deferred
    if isinstance(fun, list | tuple):
        raise Refused("malformed", fun, "a list of functions (a compound job) is refused")
    if not well_formed(fun):
        raise Refused("malformed", fun)
    if not allowed(fun):
        raise Refused("not_allowed", fun)
    entry = INDIRECT.get(fun)
    if entry is None:
        return
    if entry.kind == "refused":
        raise Refused("refused", fun, entry.argument)
    if args is None:
        raise Refused("refused", fun, "it is called with arguments that cannot be read here, "
                      "so what it would call cannot be checked")
    if depth >= MAX_DEPTH:
        raise Refused("refused", fun, f"calls nested deeper than {MAX_DEPTH} are refused")
    if entry.kind == "template":
        _check_template(fun, entry, args, kwargs or {}, published)
        return
    bound = Bound(fun, entry, args, kwargs or {}, published)
    for call in entry.inner(bound):
        try:
            check(call.fun, call.args, call.kwargs, allowed=allowed,
                  published=call.published, depth=depth + 1)
        except Refused as e:
            e.via.insert(0, f"{fun!r} would call {call.fun!r} ({call.how})")
            raise


def _check_template(fun: str, entry: Indirect, args, kwargs: dict, published: bool) -> None:
    # Only the template's position matters: bind as a function of that many parameters.
    params = tuple(f"_{i}" for i in range(entry.template_at)) + ("template",)
    shape = Indirect(entry.source, "template", entry.argument, params, True, True)
    template = Bound(fun, shape, args, kwargs, published).get("template")
    if template not in (None, "", False):
        raise Refused("refused", fun, f"with a 'template' argument ({template!r}) it renders "
                      "its input with a template engine, and a template can call any Salt "
                      "function")
