"""The bridge between the engine and a salt-master: publishes jobs for Salt
actions and completes those actions from the minions' returns.

One process has at most one bridge (:func:`current`), beside the salt-master,
using Salt's own Python API:

* **one event-bus reader thread** that never stops draining the master's event
  bus (an undrained subscriber stalls the bus for everyone) and files each
  ``salt/job/<jid>/ret/<minion>`` return under its pending job;
* **one publisher** (``LocalClient``) and **one job-cache reader**
  (``RunnerClient``), each used under its own lock: a LocalClient shared by
  threads without a lock breaks;
* **a control thread** that completes actions whose minions have all returned
  (:func:`orchestrator.engine.control.complete_action`, in this process), and at
  a job's deadline resolves each missing minion: the job cache, then
  ``saltutil.find_job`` (still running: a little longer, up to a cap; no answer:
  down or not connected);
* **recovery at start**: RUNNING Salt actions with a saved job id and no queued
  run are adopted again; returns that arrived while no bridge listened are read
  from the master's job cache by job id.

Durability: the job id is chosen here and committed with the action execution
(``context.remember``) before the publish, so a run after a crash finds it and
looks the job up in the job cache instead of publishing it again; it publishes
with the same job id only when the master never saw it.
"""
from __future__ import annotations

import logging
import queue
import threading
import time

from sqlalchemy import exists, select

from agent_bridge.actions import ACTIONS
from agent_bridge.config import SaltConfig
from agent_bridge.jobs import Job, Wait, outcome, record, wait_outcome
from orchestrator import logs, metrics
from orchestrator.actions.base import ActionContext
from orchestrator.engine import control
from orchestrator.errors import ActionError, Conflict, InvalidInput, NotFound, OrchestratorError
from orchestrator.store import schema
from orchestrator.store.db import Store

log = logging.getLogger(__name__)

PING_INTERVAL = 3.0  # salt.wait_minions: between pings of the minions not answering yet
RUNNING_STEP = 2.0  # a still-running minion is asked again this much later
RECENT_PROBES = 120.0  # seconds a finished probe's jid is kept to ignore late returns

_current: Bridge | None = None


def current() -> Bridge:
    """This process's running bridge; an ActionError when there is none."""
    if _current is None:
        raise ActionError("this process has no Salt bridge: agent actions run only in "
                          "'orchestrator serve' with ORCH_SALT_MASTER_CONFIG set or "
                          "--role agent", retryable=False)
    return _current


class Bridge:
    def __init__(self, store: Store, config: SaltConfig, *, poll: float = 0.2):
        if not config.master_config:
            raise InvalidInput("the bridge needs the salt-master's config file "
                               "(ORCH_SALT_MASTER_CONFIG)")
        self.store, self.config, self.poll = store, config, poll
        self._lock = threading.Lock()  # guards every dict below
        self._jobs: dict[str, Job] = {}
        self._waits: dict[str, Wait] = {}  # action id -> Wait
        self._probes: dict[str, tuple[str, dict]] = {}  # probe jid -> (owner, {minion: ret})
        self._finished_probes: dict[str, float] = {}
        self._done: queue.Queue = queue.Queue()  # Jobs and Waits ready to complete
        self._pub_lock = threading.Lock()
        self._runner_lock = threading.Lock()
        self._jid_lock = threading.Lock()
        self._last_jid = "0"
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._reader_error: BaseException | None = None
        self._threads: list[threading.Thread] = []
        self.events_seen = 0

    # -- life cycle ------------------------------------------------------------------
    def start(self) -> Bridge:
        """Connect to the master, adopt the jobs of a previous run, start the threads."""
        global _current
        salt = _import_salt()
        self.opts = salt.config.client_config(self.config.master_config)
        self.master_opts = salt.config.master_config(self.config.master_config)
        self._local = salt.client.LocalClient(mopts=self.opts)
        self._runner = salt.runner.RunnerClient(self.master_opts)
        self._gen_jid = salt.utils.jid.gen_jid
        self._condition_input = salt.utils.args.condition_input
        reader = threading.Thread(target=self._read_events, name="salt-bridge-events",
                                  daemon=True)
        reader.start()
        self._threads.append(reader)
        if not self._ready.wait(15):
            self.stop()
            raise OrchestratorError(f"cannot connect to the salt-master's event bus at "
                               f"{self.opts['sock_dir']}: {self._reader_error}")
        from agent_bridge.actions import register

        register()
        _current = self
        self.recover()
        control_thread = threading.Thread(target=self._control, name="salt-bridge-control",
                                          daemon=True)
        control_thread.start()
        self._threads.append(control_thread)
        return self

    def stop(self) -> None:
        """Stop the threads; pending jobs stay RUNNING in the store for the next bridge."""
        global _current
        self._stop.set()
        for t in self._threads:
            t.join(5)
        self._threads = []
        if _current is self:
            _current = None
        local = getattr(self, "_local", None)
        if local is not None:
            local.destroy()

    def __enter__(self) -> Bridge:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the actions' side (executor threads) -----------------------------------------
    def submit(self, context: ActionContext, job: dict) -> dict:
        """Publish ``job`` for an action (or find it again after a crash); the
        external reference, which the engine stores while the action stays RUNNING."""
        action_id = context.action_execution_id
        ref = context.external_ref
        if isinstance(ref, dict) and ref.get("jid"):
            with logs.context(salt_jid=ref["jid"]):
                return self._resume(action_id, ref, job)
        project = self._project(context.execution_id)
        refusal = self.config.refusal(job["fun"], project, arg=job["arg"], kwarg=job["kwarg"])
        if refusal:
            raise ActionError(refusal, retryable=False)
        ref = {"jid": self.new_jid(), "fun": job["fun"], "tgt": job["tgt"],
               "tgt_type": job["tgt_type"], "timeout": job["timeout"]}
        context.remember(ref)  # committed before the publish: never published twice
        with logs.context(salt_jid=ref["jid"]):
            return self._publish(action_id, ref, job)

    def wait_for(self, context: ActionContext, minions: list[str], timeout: float) -> dict:
        """Start (or, after a crash, resume) a salt.wait_minions action."""
        ref = context.external_ref
        if isinstance(ref, dict) and ref.get("wait"):
            minions, deadline = ref["wait"], ref["deadline"]
        else:
            deadline = time.time() + timeout
        self._add_wait(context.action_execution_id, minions, deadline, timeout)
        return {"wait": minions, "deadline": deadline, "timeout": timeout}

    def new_jid(self) -> str:
        """A Salt job id, unique in this process (an existing jid would be reused)."""
        with self._jid_lock:
            jid = self._gen_jid(self.opts)
            if jid <= self._last_jid:
                jid = str(int(self._last_jid) + 1)
            self._last_jid = jid
            return jid

    def _project(self, execution_id: str) -> str | None:
        e = schema.executions
        with self.store.connect() as conn:
            return conn.execute(select(e.c.project).where(e.c.id == execution_id)).scalar()

    def _publish(self, action_id: str, ref: dict, job: dict) -> dict:
        jid = ref["jid"]
        pending = Job(jid, action_id, job["fun"], job["timeout"],
                      deadline=time.time() + job["timeout"] + 60, published_at=time.time())
        with self._lock:  # filed before the publish: a return may come within milliseconds
            self._jobs[jid] = pending
        try:
            pub = self._pub(job["tgt"], job["fun"], job["arg"], job["kwarg"], job["tgt_type"],
                            jid)
        except Exception:
            self._forget(jid)
            raise
        if not pub.get("jid"):
            self._forget(jid)
            raise ActionError(f"no minion matched the target {job['tgt']!r} "
                              f"({job['tgt_type']}): no job was published")
        expected = set(pub["minions"])
        failed = {}
        if job["tgt_type"] == "list":
            failed = {m: "not known to the salt-master (no accepted key)"
                      for m in job["tgt"] if m not in expected}
        return self._track(pending, expected, failed, time.time() + job["timeout"], ref)

    def _track(self, pending: Job, expected: set[str], failed: dict, deadline: float,
               ref: dict) -> dict:
        with self._lock:
            pending.expected = expected | set(failed)
            pending.failed.update(failed)
            pending.deadline = deadline
            self._check(pending)
        return {**ref, "minions": sorted(pending.expected), "deadline": deadline,
                **({"unknown": sorted(failed)} if failed else {})}

    def _resume(self, action_id: str, ref: dict, job: dict) -> dict:
        """A run after a crash: the job id was saved; was the job published?"""
        jid = ref["jid"]
        with self._lock:
            known = self._jobs.get(jid)
        if known is not None:  # adopted at start meanwhile
            known.action_id = action_id
            return {**ref, "minions": sorted(known.expected or ()), "deadline": known.deadline}
        cached = self._list_job(jid, strict=True)
        if not cached.get("Minions") and "Function" not in cached:
            log.info("job %s of action %s was never published: publishing it now", jid,
                     action_id)
            return self._publish(action_id, ref, job)
        pending = Job(jid, action_id, job["fun"], job["timeout"], deadline=0.0)
        with self._lock:
            self._jobs[jid] = pending
        expected = set(cached.get("Minions") or ())
        failed = {}
        if job["tgt_type"] == "list":
            failed = {m: "not known to the salt-master (no accepted key)"
                      for m in job["tgt"] if m not in expected}
        self._merge_cache(pending, cached)
        return self._track(pending, expected, failed,
                           ref.get("deadline") or time.time() + job["timeout"], ref)

    # -- recovery --------------------------------------------------------------------
    def recover(self) -> int:
        """Adopt the RUNNING Salt actions whose job was published by an earlier
        process (their run finished: no queued work), reading returns that came
        meanwhile from the job cache. The number adopted."""
        a, w = schema.action_executions, schema.work
        with self.store.connect() as conn:
            rows = conn.execute(select(a.c.id, a.c.name, a.c.external_ref).where(
                a.c.state == "RUNNING", a.c.name.in_(list(ACTIONS)),
                a.c.external_ref.is_not(None),
                ~exists().where(w.c.action_id == a.c.id))).mappings().all()
        adopted = 0
        for row in rows:
            ref = row["external_ref"]
            if not isinstance(ref, dict):
                continue
            if ref.get("wait"):
                self._add_wait(row["id"], ref["wait"], ref["deadline"], ref["timeout"])
            elif ref.get("jid"):
                self._adopt(row["id"], ref)
            else:
                continue
            adopted += 1
        if adopted:
            log.info("adopted %d running Salt action(s)", adopted)
        return adopted

    def _adopt(self, action_id: str, ref: dict) -> None:
        jid = ref["jid"]
        expected = set(ref.get("minions") or ())
        pending = Job(jid, action_id, ref.get("fun", "?"), float(ref.get("timeout") or 60),
                      deadline=float(ref.get("deadline") or time.time()),
                      expected=expected)
        pending.failed = {m: "not known to the salt-master (no accepted key)"
                          for m in ref.get("unknown", ())}
        with self._lock:
            if jid in self._jobs:
                return
            self._jobs[jid] = pending  # the reader files returns from now on
        self._merge_cache(pending, self._list_job(jid))
        with self._lock:
            self._check(pending)

    def _merge_cache(self, pending: Job, cached: dict) -> None:
        results = cached.get("Result") or {}
        with self._lock:
            for minion, data in results.items():
                if isinstance(data, dict) and minion not in pending.returns:
                    pending.returns[minion] = record(data)

    # -- Salt calls --------------------------------------------------------------------
    def _pub(self, tgt, fun: str, arg: list, kwarg: dict, tgt_type: str, jid: str) -> dict:
        args = self._condition_input(list(arg), kwarg or {})
        with self._pub_lock:  # pub(), not run_job(): run_job prints when nothing matched
            return self._local.pub(tgt, fun, args, tgt_type=tgt_type, jid=jid, listen=False,
                                   timeout=5) or {}

    def _list_job(self, jid: str, strict: bool = False) -> dict:
        """The job as the master's job cache has it ({} when it has none). ``strict``:
        the answer decides whether to publish, so a cache that cannot be read is
        retried for a while, then an error rather than a guess."""
        tries = 10 if strict else 1
        for attempt in range(tries):
            try:
                with self._runner_lock:
                    found = self._runner.cmd("jobs.list_job", [jid], print_event=False)
                return found if isinstance(found, dict) else {}
            except Exception as e:
                log.warning("reading job %s from the job cache failed: %s", jid, e)
                if attempt + 1 < tries:
                    time.sleep(3)
        if strict:
            raise ActionError(f"cannot read the salt-master's job cache to tell whether job "
                              f"{jid} was published; not publishing it again", retryable=False)
        return {}  # go on with the bus; the deadline will look again

    # -- the event bus (reader thread) ---------------------------------------------------
    def _read_events(self) -> None:
        import salt.utils.event

        try:
            bus = salt.utils.event.get_event("master", sock_dir=self.opts["sock_dir"],
                                             opts=self.opts, listen=True)
            bus.connect_pub(timeout=10)
        except Exception as e:
            self._reader_error = e
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                event = bus.get_event(wait=0.5, tag="salt/", full=True, auto_reconnect=True)
                if event:
                    self.events_seen += 1
                    self._dispatch(event["tag"], event["data"])
        finally:
            bus.destroy()

    def _dispatch(self, tag: str, data: dict) -> None:
        parts = tag.split("/")
        if len(parts) >= 5 and parts[1] == "job" and parts[3] == "ret":
            jid, minion = parts[2], parts[4]
            with self._lock:
                pending = self._jobs.get(jid)
                if pending is not None:
                    pending.returns.setdefault(minion, record(data))
                    pending.last_return_at = time.time()
                    self._check(pending)
                elif jid in self._probes:
                    owner, answers = self._probes[jid]
                    answers[minion] = data.get("return")
                    wait = self._waits.get(owner)
                    if wait is not None and data.get("return") is True:
                        wait.answered.add(minion)
                        self._check_wait(wait)
        elif len(parts) >= 4 and parts[1] == "minion" and parts[3] == "start":
            with self._lock:  # a booting minion: ping it soon rather than at the next round
                for wait in self._waits.values():
                    if parts[2] in wait.minions and parts[2] not in wait.answered:
                        wait.next_ping = min(wait.next_ping, time.time() + 0.5)

    def _check(self, pending: Job) -> None:
        """With the lock held: queue the job for completion once nothing is missing."""
        if not pending.done and pending.expected is not None and not pending.missing():
            pending.done = True
            self._done.put(pending)

    def _check_wait(self, wait: Wait) -> None:
        if not wait.done and set(wait.minions) <= wait.answered:
            wait.done = True
            self._done.put(wait)

    def _forget(self, jid: str) -> None:
        with self._lock:
            self._jobs.pop(jid, None)

    # -- control thread: completions and deadlines -----------------------------------------
    def _control(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._done.get(timeout=self.poll)
            except queue.Empty:
                item = None
            try:
                if item is not None:
                    self._complete(item)
                    while True:  # everything else that is ready, before slower work
                        try:
                            self._complete(self._done.get_nowait())
                        except queue.Empty:
                            break
                self._watch(time.time())
            except Exception:
                log.exception("salt bridge control round failed")

    def _watch(self, now: float) -> None:
        with self._lock:
            jobs = [j for j in self._jobs.values()
                    if not j.done and j.expected is not None and now >= j.deadline]
            waits = [w for w in self._waits.values() if not w.done]
            old = [p for p, at in self._finished_probes.items() if now - at > RECENT_PROBES]
            for p in old:
                self._finished_probes.pop(p)
                self._probes.pop(p, None)
        for pending in jobs:
            with logs.context(action_execution_id=pending.action_id, salt_jid=pending.jid):
                self._resolve(pending, now)
        for wait in waits:
            self._tend(wait, now)

    def _resolve(self, pending: Job, now: float) -> None:
        """A job past its deadline with minions missing: find out why, or wait a bit."""
        if pending.probe is None:
            self._merge_cache(pending, self._list_job(pending.jid))
            with self._lock:
                self._check(pending)
                missing = sorted(pending.missing())
            if not missing:
                return
            probe = self.new_jid()
            with self._lock:
                self._probes[probe] = (pending.jid, {})
            try:
                self._pub(missing, "saltutil.find_job", [pending.jid], {}, "list", probe)
            except Exception as e:
                log.warning("find_job for job %s failed: %s", pending.jid, e)
            pending.probe, pending.probe_until = probe, time.time() + self.config.probe_wait
            if not pending.running_until:
                pending.running_until = pending.deadline + self.config.running_grace
            return
        with self._lock:
            answers = dict(self._probes[pending.probe][1])
            missing = sorted(pending.missing())
        if time.time() < pending.probe_until and not set(missing) <= answers.keys():
            return  # still waiting for find_job answers
        with self._lock:
            self._finished_probes[pending.probe] = time.time()
        pending.probe = None
        if any(m in answers and not answers[m] for m in missing):
            # Alive, but no job running: its return may be in the cache by now.
            self._merge_cache(pending, self._list_job(pending.jid))
        waited = round(now - pending.running_until + self.config.running_grace + pending.timeout)
        extend = False
        with self._lock:
            for minion in sorted(pending.missing()):
                if minion in answers and now < pending.running_until:
                    # Still running ({'jid', 'pid', ...}), or alive with no job listed:
                    # a minion with multiprocessing off never lists its jobs (3007.10).
                    extend = True
                    continue
                if answers.get(minion):
                    why = f"still running after {waited}s (timeout {pending.timeout:g}s)"
                elif minion in answers:
                    why = (f"did not return within {waited}s although it answers: its return "
                           "was lost or it never got the job (saltutil.find_cached_job "
                           f"{pending.jid} on the minion)")
                else:
                    why = (f"did not return within {pending.timeout:g}s and does not answer "
                           "(minion down or not connected)")
                pending.failed[minion] = why
            if extend:
                pending.deadline = min(now + RUNNING_STEP, pending.running_until)
            self._check(pending)

    def _tend(self, wait: Wait, now: float) -> None:
        """salt.wait_minions: ping the minions not answering yet, or give up."""
        if now >= wait.deadline:
            with self._lock:
                if wait.done:
                    return
                wait.done = True
            self._done.put(wait)
            return
        if now < wait.next_ping:
            return
        missing = [m for m in wait.minions if m not in wait.answered]
        wait.next_ping = now + PING_INTERVAL
        probe = self.new_jid()
        with self._lock:
            self._probes[probe] = (wait.action_id, {})
            self._finished_probes[probe] = now  # kept a while, then forgotten
        try:
            self._pub(missing, "test.ping", [], {}, "list", probe)
        except Exception as e:
            log.warning("pinging %s failed: %s", ", ".join(missing), e)

    def _add_wait(self, action_id: str, minions: list[str], deadline: float,
                  timeout: float) -> None:
        with self._lock:
            if action_id not in self._waits:
                self._waits[action_id] = Wait(action_id, list(minions), deadline, timeout)

    # -- completing actions -------------------------------------------------------------
    def _complete(self, item: Job | Wait) -> None:
        if isinstance(item, Wait):
            state, output, info = wait_outcome(item)
            with self._lock:
                self._waits.pop(item.action_id, None)
        else:
            state, output, info = outcome(item)
            self._forget(item.jid)
            if item.published_at:  # publish to the last return, or to the verdict on the missing
                end = time.time() if item.failed or not item.last_return_at else item.last_return_at
                metrics.observe_salt_job(item.fun, state, end - item.published_at)
        with logs.context(action_execution_id=item.action_id,
                          salt_jid=getattr(item, "jid", None)):
            self._complete_action(item, state, output, info)

    def _complete_action(self, item: Job | Wait, state: str, output, info) -> None:
        try:
            control.complete_action(self.store, item.action_id, state, output, info=info)
        except (Conflict, NotFound) as e:  # cancelled, or completed by another bridge
            log.info("action %s not completed by the bridge: %s", item.action_id, e)


def _import_salt():
    """Import the salt modules the bridge uses, undoing what importing salt does
    to the process (see :func:`agent_bridge.lab.import_salt`)."""
    import warnings

    from agent_bridge.lab import import_salt

    salt = import_salt()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # salt and its deps import deprecated modules
        import salt.runner
        import salt.utils.args
        import salt.utils.jid
    return salt
