"""``orchestrator serve``: the API (served by waitress, a production WSGI
server), the engine and, as they land, the other roles, in one process or
split across processes with ``--role``. SIGTERM stops cleanly: the API stops
accepting requests, and running actions get a grace period and are then handed
back to the queue for another process.

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
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        where = store.url.split("://")[0] + ("" if store.is_sqlite else " (shared)")
        if "api" in roles:
            import waitress

            app = create_app(ApiConfig(store=store, tokens=tokens, no_auth=options.no_auth,
                                       on_change=worker.wake if worker else None))
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
    return 0
