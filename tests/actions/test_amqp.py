"""std.amqp against the real RabbitMQ of this machine (127.0.0.1:5672, guest/guest):
messages are read back with pika, RPC replies come from a responder thread."""
import json
import threading
import time
import uuid

import pika
import pytest

from orchestrator.actions import registry
from orchestrator.actions.amqp import Amqp
from orchestrator.actions.base import ActionContext
from orchestrator.errors import ActionError
from orchestrator.processes import free_port

URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
CTX = ActionContext(execution_id="ex-1", task_execution_id="t-1",
                    action_execution_id="act-amqp-1", task_name="call", workflow_name="wf")


@pytest.fixture
def channel():
    connection = pika.BlockingConnection(pika.URLParameters(URL))
    yield connection.channel()
    connection.close()


@pytest.fixture
def new_queue(channel):
    """Declares queues with names unique to the test; deletes them afterwards."""
    names = []

    def declare(prefix="orch-test"):
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        channel.queue_declare(name)
        names.append(name)
        return name

    yield declare
    for name in names:
        channel.queue_delete(name)


def take(channel, queue):
    """The one message on ``queue``: (properties, body)."""
    method, props, body = channel.basic_get(queue, auto_ack=True)
    assert method is not None, f"no message on {queue}"
    return props, body


class Responder:
    """Consumes ``queue`` in a thread and answers each request on its reply_to."""

    def __init__(self, queue, answer=None, decoy=False):
        self.queue, self.decoy = queue, decoy
        self.answer = answer or (lambda props, body: (
            json.dumps({"echo": json.loads(body), "id": props.message_id}).encode(),
            "application/json"))
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(5)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)

    def _serve(self):
        connection = pika.BlockingConnection(pika.URLParameters(URL))
        ch = connection.channel()

        def on_request(ch, method, props, body):
            if self.decoy:  # a stray reply first: the action must skip it
                ch.basic_publish("", props.reply_to, b'"stray"', pika.BasicProperties(
                    correlation_id="someone-else", content_type="application/json"))
            payload, ctype = self.answer(props, body)
            ch.basic_publish("", props.reply_to, payload, pika.BasicProperties(
                correlation_id=props.correlation_id, content_type=ctype,
                headers={"x-responder": "test", "x-count": 1}))
            ch.basic_ack(method.delivery_tag)

        ch.basic_consume(self.queue, on_request)
        self.ready.set()
        while not self.stop.is_set():
            connection.process_data_events(time_limit=0.05)
        connection.close()


# --- publishing -------------------------------------------------------------------------

def test_a_dict_body_is_published_as_persistent_json_with_the_idempotency_key(channel, new_queue):
    queue = new_queue()
    result = Amqp(url=URL, routing_key=queue, body={"app": "web", "n": [1, 2]},
                  headers={"x-env": "prod", "x-try": 3}).run(CTX)
    assert result == {"published": True, "message_id": "act-amqp-1", "exchange": "",
                      "routing_key": queue, "reply": None, "reply_headers": None}
    props, body = take(channel, queue)
    assert json.loads(body) == {"app": "web", "n": [1, 2]}
    assert props.content_type == "application/json"
    assert props.delivery_mode == 2
    assert props.message_id == CTX.idempotency_key
    assert props.headers == {"x-env": "prod", "x-try": 3}
    assert props.reply_to is None and props.correlation_id is None


def test_a_str_body_is_published_as_text_and_persistent_false_is_transient(channel, new_queue):
    queue = new_queue()
    Amqp(url=URL, routing_key=queue, body="hello, wörld", persistent=False).run(CTX)
    props, body = take(channel, queue)
    assert body.decode() == "hello, wörld"
    assert (props.content_type, props.delivery_mode) == ("text/plain", 1)


def test_content_type_overrides_the_one_chosen_from_the_body(channel, new_queue):
    queue = new_queue()
    Amqp(url=URL, routing_key=queue, body="<a/>", content_type="application/xml").run(CTX)
    props, body = take(channel, queue)
    assert (props.content_type, body) == ("application/xml", b"<a/>")


def test_every_attempt_of_the_action_carries_the_same_message_id(channel, new_queue):
    queue = new_queue()
    for attempt in (1, 2):
        ctx = ActionContext("ex", "t", "act-same", "call", "wf", attempt=attempt)
        Amqp(url=URL, routing_key=queue, body=[attempt]).run(ctx)
    ids = [take(channel, queue)[0].message_id for _ in range(2)]
    assert ids == ["act-same", "act-same"]


def test_std_amqp_is_a_registered_std_action():
    assert registry.get("std.amqp") is Amqp


# --- RPC ---------------------------------------------------------------------------------

def test_wait_for_reply_returns_the_parsed_reply_and_its_headers(new_queue):
    queue = new_queue()
    with Responder(queue, decoy=True):
        result = Amqp(url=URL, routing_key=queue, body={"q": "version?"},
                      wait_for_reply=True, reply_timeout=5).run(CTX)
    assert result["reply"] == {"echo": {"q": "version?"}, "id": "act-amqp-1"}
    assert result["reply_headers"] == {"x-responder": "test", "x-count": 1}
    assert result["published"] is True


def test_a_text_reply_is_returned_as_text(new_queue):
    queue = new_queue()
    with Responder(queue, answer=lambda props, body: (b"pong " + body, "text/plain")):
        result = Amqp(url=URL, routing_key=queue, body="ping",
                      wait_for_reply=True, reply_timeout=5).run(CTX)
    assert result["reply"] == "pong ping"


def test_no_reply_within_reply_timeout_is_a_retryable_error(new_queue):
    queue = new_queue()
    started = time.monotonic()
    with pytest.raises(ActionError) as exc:
        Amqp(url=URL, routing_key=queue, body={}, wait_for_reply=True,
             reply_timeout=0.5).run(CTX)
    assert time.monotonic() - started < 20  # generous: far below the default of 30 s
    assert "no reply within 0.5s" in exc.value.message
    assert queue in exc.value.message
    assert exc.value.retryable


# --- errors ------------------------------------------------------------------------------

def test_an_unroutable_message_is_an_error():
    missing = f"orch-test-nobody-{uuid.uuid4().hex[:10]}"
    with pytest.raises(ActionError) as exc:
        Amqp(url=URL, routing_key=missing, body={}).run(CTX)
    assert "unroutable" in exc.value.message and missing in exc.value.message


def test_an_exchange_that_does_not_exist_is_an_error():
    with pytest.raises(ActionError) as exc:
        Amqp(url=URL, exchange="orch-test-no-such-exchange", routing_key="x", body={}).run(CTX)
    assert "exchange 'orch-test-no-such-exchange' does not exist" in exc.value.message


def test_a_wrong_password_is_an_auth_error_that_does_not_show_the_password():
    password = "Sup3r-s3cret-pw"
    with pytest.raises(ActionError) as exc:
        Amqp(url=f"amqp://guest:{password}@127.0.0.1:5672/%2F", routing_key="x").run(CTX)
    assert "refused the login" in exc.value.message
    assert "guest@127.0.0.1:5672" in exc.value.message
    assert password not in exc.value.message and password not in str(exc.value.data)
    assert not exc.value.retryable


def test_a_closed_port_fails_quickly_naming_host_and_port_without_the_password():
    port, password = free_port(), "Sup3r-s3cret-pw"
    started = time.monotonic()
    with pytest.raises(ActionError) as exc:
        Amqp(url=f"amqp://guest:{password}@127.0.0.1:{port}/", routing_key="x",
             timeout=60).run(CTX)
    assert time.monotonic() - started < 30  # refused at once: not its 60 s timeout
    assert f"cannot connect to guest@127.0.0.1:{port}" in exc.value.message
    assert password not in exc.value.message
    assert exc.value.retryable


def test_an_unknown_host_fails_quickly():
    with pytest.raises(ActionError) as exc:
        Amqp(url="amqp://guest:guest@no-such-host.invalid:5672/", routing_key="x",
             timeout=2).run(CTX)
    assert "cannot connect to guest@no-such-host.invalid:5672" in exc.value.message


def test_a_url_that_is_not_amqp_is_not_retryable():
    with pytest.raises(ActionError) as exc:
        Amqp(url="http://127.0.0.1:5672/", routing_key="x").run(CTX)
    assert "amqp://user:pass@host:port/vhost" in exc.value.message
    assert not exc.value.retryable


# --- in a workflow -----------------------------------------------------------------------

def test_a_workflow_asks_over_amqp_and_publishes_the_reply(runner, channel, new_queue):
    requests, results = new_queue(), new_queue()
    with Responder(requests, answer=lambda props, body: (
            json.dumps({"version": "1.2." + str(json.loads(body)["build"])}).encode(),
            "application/json")):
        s = runner.run("""
version: '2.0'
wf:
  input: [url, requests, results]
  output:
    version: <% $.version %>
  tasks:
    ask:
      action: std.amqp
      input:
        url: <% $.url %>
        routing_key: <% $.requests %>
        body: {build: 7}
        wait_for_reply: true
        reply_timeout: 5
      publish:
        version: <% task().result.reply.version %>
      on-success: [tell]
    tell:
      action: std.amqp
      input:
        url: <% $.url %>
        routing_key: <% $.results %>
        body: "deployed <% $.version %>"
""", {"url": URL, "requests": requests, "results": results})
    assert s["state"] == "SUCCESS", s
    assert s["output"] == {"version": "1.2.7"}
    ask = runner.task(s, "ask")
    assert ask["result"]["reply"] == {"version": "1.2.7"}
    props, body = take(channel, results)
    assert body == b"deployed 1.2.7"
    assert props.message_id != ask["result"]["message_id"]  # one key per action execution
