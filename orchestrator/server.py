"""``orchestrator serve``: the API (served by waitress, a production WSGI
server), the engine and, as they land, the other roles, in one process or
split across processes with ``--role``. SIGTERM stops cleanly: the API stops
accepting requests, and running actions get a grace period and are then handed
back to the queue for another process."""
from __future__ import annotations

import logging
import signal
import sys
import threading
from dataclasses import dataclass, field

from orchestrator.errors import InvalidInput

log = logging.getLogger("orchestrator.server")

ROLES = ("api", "engine", "scheduler")
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8989
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServeOptions:
    db: str | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    roles: tuple[str, ...] = ROLES
    no_auth: bool = False
    tokens_file: str | None = None
    api_threads: int = 8
    executor_threads: int = 8
    lease: float = 15.0
    grace: float = 10.0
    ready: threading.Event = field(default_factory=threading.Event)  # set once serving


def _check(options: ServeOptions, tokens: dict) -> None:
    unknown = set(options.roles) - set(ROLES)
    if unknown:
        raise InvalidInput(f"unknown role(s) {', '.join(sorted(unknown))}; roles: "
                           + ", ".join(ROLES))
    if "api" not in options.roles:
        return
    if options.no_auth:
        if options.host not in LOCAL_HOSTS:
            raise InvalidInput("--no-auth serves only on 127.0.0.1; remove --host or set up "
                               "tokens (ORCH_API_TOKENS or --tokens FILE)")
    elif not tokens:
        raise InvalidInput("no API tokens are configured: set ORCH_API_TOKENS "
                           "(token=project:role,...) or --tokens FILE, or run locally "
                           "without authentication with --no-auth")


class _Stop(Exception):
    pass


def _raise_stop(signum, frame):
    raise _Stop()


def serve(options: ServeOptions, out=sys.stderr) -> int:
    from orchestrator.api import ApiConfig, create_app
    from orchestrator.api.auth import load_tokens
    from orchestrator.engine.worker import Worker
    from orchestrator.scheduler import Scheduler
    from orchestrator.store.db import Store

    tokens = load_tokens(options.tokens_file) if "api" in options.roles else {}
    _check(options, tokens)
    store = Store(options.db)
    worker = None
    if "engine" in options.roles:
        worker = Worker(store, threads=options.executor_threads, lease=options.lease).start()
    scheduler = None
    if "scheduler" in options.roles:
        scheduler = Scheduler(store, on_start=worker.wake if worker else None).start()
    server = None
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        where = store.url.split("://")[0] + ("" if store.is_sqlite else " (shared)")
        if "api" in options.roles:
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
                  f"(roles: {', '.join(options.roles)}; store: {where})", file=out, flush=True)
            options.ready.set()
            server.run()
        else:
            print(f"orchestrator running (roles: {', '.join(options.roles)}; store: {where})",
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
        store.dispose()
        signal.signal(signal.SIGTERM, previous)
    return 0
