"""``std.amqp``: publish one message to an AMQP 0-9-1 broker (RabbitMQ), and
optionally wait for its reply (RPC over RabbitMQ's direct reply-to).

The publish uses publisher confirms, so a returned result means the broker
took the message; with ``mandatory`` an unroutable message is an error rather
than silently dropped. The message's ``message_id`` is the action's idempotency
key, the same on every attempt, so a consumer can deduplicate repeats.

Each run opens and closes its own connection (actions run in worker threads,
and pika connections are not thread-safe). The password of the URL never
appears in an error message or result: messages name ``user@host:port/vhost``.
"""
from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlsplit

import pika
import pika.exceptions as pex

from orchestrator.actions.base import Action, ActionContext
from orchestrator.errors import ActionError

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


class Amqp(Action):
    """Publishes ``body`` to ``exchange`` with ``routing_key`` on the broker at
    ``url`` (``amqp://user:pass@host:port/vhost``). A dict, list or other JSON
    value is sent as JSON (``application/json``), a str as ``text/plain``.
    With ``wait_for_reply`` the message carries ``reply_to`` and a
    ``correlation_id`` and the action waits up to ``reply_timeout`` seconds for
    the matching reply. Returns ``{published, message_id, exchange,
    routing_key, reply, reply_headers}``; ``reply`` is the parsed JSON or text
    of the reply body, or None without ``wait_for_reply``."""

    def __init__(self, url: str, routing_key: str, exchange: str = "", body=None,
                 headers=None, persistent: bool = True, content_type: str | None = None,
                 wait_for_reply: bool = False, reply_timeout: float = 30,
                 timeout: float = 10, mandatory: bool = True):
        self.url, self.routing_key, self.exchange = url, routing_key, exchange or ""
        self.body, self.headers = body, headers
        self.persistent, self.content_type = persistent, content_type
        self.wait_for_reply, self.reply_timeout = wait_for_reply, reply_timeout
        self.timeout, self.mandatory = timeout, mandatory

    def run(self, context: ActionContext) -> dict:
        params, where, password = _parameters(self.url, self.timeout)
        if self.headers is not None and not isinstance(self.headers, dict):
            raise ActionError("std.amqp headers must be a dict of header names to values",
                              retryable=False)
        payload, ctype, encoding = _encode(self.body)
        correlation_id = uuid.uuid4().hex if self.wait_for_reply else None
        props = pika.BasicProperties(
            content_type=self.content_type or ctype,
            content_encoding=encoding,
            headers=dict(self.headers) if self.headers else None,
            delivery_mode=pika.DeliveryMode.Persistent if self.persistent
            else pika.DeliveryMode.Transient,
            message_id=context.idempotency_key,
            correlation_id=correlation_id,
            reply_to=DIRECT_REPLY_TO if self.wait_for_reply else None,
            timestamp=int(time.time()),
        )
        target = f"exchange {self.exchange or '(default)'!r} with routing key " \
                 f"{self.routing_key!r} on {where}"
        try:
            reply = self._publish(params, props, payload, target)
        except pex.ProbableAuthenticationError as e:
            raise ActionError(f"std.amqp: the broker {where} refused the login (wrong user "
                              f"or password?): {_say(e, password)}", retryable=False) from None
        except pex.ProbableAccessDeniedError as e:
            raise ActionError(f"std.amqp: the broker {where} denied access to the virtual "
                              f"host: {_say(e, password)}", retryable=False) from None
        except pex.ConnectionBlockedTimeout:
            raise ActionError(f"std.amqp: the broker {where} blocked publishing for more than "
                              f"{self.timeout}s (resource alarm?)") from None
        except pex.AMQPConnectionError as e:
            raise ActionError(f"std.amqp cannot connect to {where}: {_say(e, password)}") from None
        except pex.AMQPError as e:
            raise ActionError(f"std.amqp publishing to {target} failed: "
                              f"{_say(e, password)}") from None
        except OSError as e:  # name resolution and socket errors escape pika as they are
            raise ActionError(f"std.amqp cannot connect to {where}: {_say(e, password)}") from None

        result: dict[str, Any] = {
            "published": True, "message_id": context.idempotency_key,
            "exchange": self.exchange, "routing_key": self.routing_key,
            "reply": None, "reply_headers": None,
        }
        if reply is not None:
            reply_props, reply_body = reply
            result["reply"] = _decode(reply_props, reply_body)
            result["reply_headers"] = _jsonable(reply_props.headers or {})
        return result

    def _publish(self, params: pika.ConnectionParameters, props: pika.BasicProperties,
                 payload: bytes, target: str):
        connection = pika.BlockingConnection(params)
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            replies: list = []
            if self.wait_for_reply:
                # Direct reply-to: the consumer must exist before the publish, on the
                # same channel; no queue is created, so nothing is left behind.
                def on_reply(_ch, _method, reply_props, reply_body):
                    if reply_props.correlation_id == props.correlation_id:
                        replies.append((reply_props, reply_body))
                channel.basic_consume(DIRECT_REPLY_TO, on_reply, auto_ack=True)
            try:
                channel.basic_publish(self.exchange, self.routing_key, payload, props,
                                      mandatory=bool(self.mandatory))
            except pex.UnroutableError:
                # Retryable, like HTTP 404: the consumer may not have declared its queue yet.
                raise ActionError(f"std.amqp: the message to {target} was returned unroutable "
                                  f"(no queue is bound for it)") from None
            except pex.NackError:
                raise ActionError(f"std.amqp: the broker refused (nack) the message to "
                                  f"{target}") from None
            except pex.ChannelClosedByBroker as e:
                if e.reply_code == 404:
                    raise ActionError(f"std.amqp: exchange {self.exchange!r} does not exist "
                                      f"({target}): {e.reply_text}") from None
                raise
            if not self.wait_for_reply:
                return None
            deadline = time.monotonic() + float(self.reply_timeout)
            while not replies:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ActionError(
                        f"std.amqp: no reply within {self.reply_timeout}s to message "
                        f"{props.message_id} sent to {target}")
                connection.process_data_events(time_limit=min(left, 1.0))
            return replies[0]
        finally:
            if connection.is_open:
                try:
                    connection.close()
                except pex.AMQPError:  # closing a broken connection must not hide the cause
                    pass


def _parameters(url: str, timeout: float) -> tuple[pika.URLParameters, str, str]:
    """pika parameters for ``url``, its redacted ``user@host:port/vhost`` form for
    messages, and the password to scrub from foreign messages."""
    if not isinstance(url, str) or not url:
        raise ActionError("std.amqp url is required: amqp://user:pass@host:port/vhost",
                          retryable=False)
    parts = urlsplit(url)
    password = unquote(parts.password or "")
    try:
        port = parts.port
        params = pika.URLParameters(url)
    except ValueError as e:
        raise ActionError(f"std.amqp url is invalid: {_say(e, password)}",
                          retryable=False) from None
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise ActionError(f"std.amqp url must look like amqp://user:pass@host:port/vhost, "
                          f"not scheme {parts.scheme!r} and host {parts.hostname!r}",
                          retryable=False)
    port = port or (5671 if parts.scheme == "amqps" else 5672)
    where = f"{params.credentials.username}@{parts.hostname}:{port}/{params.virtual_host}"
    # One quick attempt: the task's retry policy decides about trying again.
    params.connection_attempts = 1
    params.retry_delay = 0
    params.socket_timeout = float(timeout)
    params.stack_timeout = float(timeout)
    params.blocked_connection_timeout = float(timeout)
    return params, where, password


def _say(e: BaseException, password: str) -> str:
    """A foreign exception as text, with the password masked should it echo the URL."""
    text = f"{type(e).__name__}: {e}"
    return text.replace(password, "***") if password else text


def _encode(body) -> tuple[bytes, str, str | None]:
    if isinstance(body, bytes):
        return body, "application/octet-stream", None
    if isinstance(body, str):
        return body.encode(), "text/plain", "utf-8"
    try:
        return json.dumps(body).encode(), "application/json", "utf-8"
    except (TypeError, ValueError) as e:
        raise ActionError(f"std.amqp body is not a JSON value: {e}", retryable=False) from None


def _decode(props: pika.BasicProperties, raw: bytes) -> Any:
    text = raw.decode(props.content_encoding or "utf-8", errors="replace")
    # Same rule as std.http: JSON by content type, or a body that looks like a document.
    if "json" in (props.content_type or "").lower() or text.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def _jsonable(value: Any) -> Any:
    """AMQP header tables hold bytes, decimals and timestamps; results must be JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value
