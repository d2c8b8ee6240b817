"""``orchestrator serve``: the API (served by waitress, a production WSGI
server), the engine and, as they land, the other roles, in one process or
split across processes with ``--role``. SIGTERM stops cleanly: the API stops
accepting requests, and running actions get a grace period and are then handed
back to the queue for another process. SIGHUP reads the API tokens again (the
``--tokens`` file and ``ORCH_API_TOKENS``): a token removed from the file stops
working at once; a file that cannot be read keeps the tokens in use and logs why.

The Salt bridge (role ``agent``) runs beside the salt-master: in the default
``serve`` when ``ORCH_SALT_MASTER_CONFIG`` (or ``--salt-master-config``) is set,
then the engine also runs agent actions; or alone with ``--role agent`` on the
master's machine, claiming only agent actions, while the engine runs elsewhere."""
from __future__ import annotations

import dataclasses
import logging
import signal
import sys
import threading
from dataclasses import dataclass, field

from orchestrator.errors import InvalidInput

log = logging.getLogger("orchestrator.server")

ROLES = ("api", "engine", "scheduler", "agent")
DEFAULT_ROLES = ("api", "engine", "scheduler")  # and agent when a salt-master is configured
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8989
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServeOptions:
    db: str | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    roles: tuple[str, ...] | None = None  # None: the defaults (DEFAULT_ROLES, + agent)
    salt_master_config: str | None = None  # else ORCH_SALT_MASTER_CONFIG
    no_auth: bool = False
    tokens_file: str | None = None
    api_threads: int = 8
    executor_threads: int = 8
    lease: float = 15.0
    grace: float = 10.0
    ready: threading.Event = field(default_factory=threading.Event)  # set once serving


def _roles(options: ServeOptions, salt_config) -> tuple[str, ...]:
    if options.roles:
        return tuple(options.roles)
    return DEFAULT_ROLES + (("agent",) if salt_config.master_config else ())


def _salt_config(options: ServeOptions):
    from agent_bridge.config import SaltConfig

    config = SaltConfig.from_env()
    if options.salt_master_config:
        config = dataclasses.replace(config, master_config=options.salt_master_config)
    return config


def _check(options: ServeOptions, roles: tuple[str, ...], tokens: dict, salt_config) -> None:
    if "agent" in roles and not salt_config.master_config:
        raise InvalidInput("the agent role needs the salt-master's config file: set "
                           "ORCH_SALT_MASTER_CONFIG or --salt-master-config")
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise InvalidInput(f"unknown role(s) {', '.join(sorted(unknown))}; roles: "
                           + ", ".join(ROLES))
    if "api" not in roles:
        return
    if options.no_auth:
        if options.host not in LOCAL_HOSTS:
            raise InvalidInput("--no-auth serves only on 127.0.0.1; remove --host or set up "
                               "tokens (ORCH_API_TOKENS or --tokens FILE)")
    elif not tokens:
        raise InvalidInput("no API tokens are configured: set ORCH_API_TOKENS "
                           "(token=project:role,...) or --tokens FILE, or run locally "
                           "without authentication with --no-auth")


class _Stop(SystemExit):
    """Raised by SIGTERM in the main thread. A SystemExit, because waitress swallows
    an Exception raised while it handles a socket event and would keep serving."""


def _raise_stop(signum, frame):
    raise _Stop()


class _TokenReloader:
    """SIGHUP: the tokens read again in a thread of their own (not inside the signal
    handler, which interrupts whatever the main thread was doing), then swapped into
    the API's config in one assignment, so a request sees the old set or the new."""

    def __init__(self, options: ServeOptions, api_config, out):
        self.options, self.api_config, self.out = options, api_config, out
        self._lock = threading.Lock()

    def on_signal(self, signum, frame) -> None:
        threading.Thread(target=self.reload, name="tokens-reload", daemon=True).start()

    def reload(self) -> None:
        from orchestrator.api.auth import load_tokens

        where = self.options.tokens_file or "ORCH_API_TOKENS_FILE/ORCH_API_TOKENS"
        with self._lock:
            try:
                tokens = load_tokens(self.options.tokens_file)
            except InvalidInput as e:
                log.error("API tokens not reloaded (%s); the %d tokens in use stay: %s",
                          where, len(self.api_config.tokens), e.message)
                return
            except Exception:  # never let a reload take the service down
                log.exception("API tokens not reloaded (%s); the tokens in use stay", where)
                return
            self.api_config.tokens = tokens
        if not tokens and not self.api_config.no_auth:
            log.warning("API tokens reloaded from %s: none left, every request gets 401",
                        where)
        print(f"API tokens reloaded from {where}: {len(tokens)} token(s)", file=self.out,
              flush=True)


def serve(options: ServeOptions, out=sys.stderr) -> int:
    from orchestrator.api import ApiConfig, create_app
    from orchestrator.api.auth import load_tokens
    from orchestrator.engine.worker import Worker
    from orchestrator.scheduler import Scheduler
    from orchestrator.store.db import Store

    salt_config = _salt_config(options)
    roles = _roles(options, salt_config)
    tokens = load_tokens(options.tokens_file) if "api" in roles else {}
    _check(options, roles, tokens, salt_config)
    store = Store(options.db)
    worker = bridge = None
    agent = "agent" in roles
    if agent:
        from agent_bridge.bridge import Bridge

        bridge = Bridge(store, salt_config).start()
    if "engine" in roles or agent:
        worker = Worker(store, threads=options.executor_threads, lease=options.lease,
                        agent=agent, only_agent="engine" not in roles).start()
    scheduler = None
    if "scheduler" in roles:
        scheduler = Scheduler(store, on_start=worker.wake if worker else None).start()
    server = None
    previous_hup = None
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        where = store.url.split("://")[0] + ("" if store.is_sqlite else " (shared)")
        if "api" in roles:
            import waitress

            api_config = ApiConfig(store=store, tokens=tokens, no_auth=options.no_auth,
                                   on_change=worker.wake if worker else None)
            app = create_app(api_config)
            if hasattr(signal, "SIGHUP"):
                previous_hup = signal.signal(
                    signal.SIGHUP, _TokenReloader(options, api_config, out).on_signal)
            server = waitress.create_server(app, host=options.host, port=options.port,
                                            threads=options.api_threads, ident="orchestrator")
            port = server.effective_port
            if options.no_auth:
                print("WARNING: authentication is off (--no-auth): anyone on this machine "
                      "can use the API", file=out, flush=True)
            print(f"orchestrator serving http://{options.host}:{port} "
                  f"(roles: {', '.join(roles)}; store: {where})", file=out, flush=True)
            options.ready.set()
            server.run()
            raise _Stop()  # run() returns once SIGTERM or Ctrl-C stopped its loop
        else:
            print(f"orchestrator running (roles: {', '.join(roles)}; store: {where})",
                  file=out, flush=True)
            options.ready.set()
            threading.Event().wait()
    except (_Stop, KeyboardInterrupt):
        print("stopping: handing running work back", file=out, flush=True)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut this short
        if server is not None:
            server.close()
        if scheduler is not None:
            scheduler.stop()
        if worker is not None:
            worker.stop(grace=options.grace)
        if bridge is not None:
            bridge.stop()
        store.dispose()
        signal.signal(signal.SIGTERM, previous)
        if previous_hup is not None:
            signal.signal(signal.SIGHUP, previous_hup)
    return 0
