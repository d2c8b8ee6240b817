"""The lab cloud's errors: each class carries its HTTP status and its OpenStack fault name
(nova/cinder ``wsgi.Fault._fault_names``); the API renders them once."""
from __future__ import annotations

from orchestrator.errors import OrchestratorError


class CloudError(OrchestratorError):
    """The cloud failed to handle the request."""

    status_code = 500
    fault = "computeFault"  # the name for every status without one of its own
    title = "Internal Server Error"  # Keystone's shape: {"error": {code, title, message}}
    retry_after: str | None = None

    def to_dict(self) -> dict:
        body: dict = {"code": self.status_code, "message": self.message}
        if self.retry_after is not None:
            body["retryAfter"] = self.retry_after
        return {self.fault: body}


class BadRequest(CloudError):
    """Bad Request"""

    status_code, fault, title = 400, "badRequest", "Bad Request"


class Unauthorized(CloudError):
    """The request you have made requires authentication."""

    status_code, fault, title = 401, "unauthorized", "Unauthorized"


class Forbidden(CloudError):
    """Forbidden"""

    status_code, fault, title = 403, "forbidden", "Forbidden"


class NotFound(CloudError):
    """The resource could not be found."""

    status_code, fault, title = 404, "itemNotFound", "Not Found"


class BadMethod(CloudError):
    """The method is not allowed for the requested URL."""

    status_code, fault, title = 405, "badMethod", "Method Not Allowed"


class NotAcceptable(CloudError):
    """The requested API version is not supported."""

    status_code, title = 406, "Not Acceptable"


class Conflict(CloudError):
    """There was a conflict when trying to complete your request."""

    status_code, fault, title = 409, "conflictingRequest", "Conflict"


class OverLimit(CloudError):
    """Quota exceeded (Cinder's 413, with ``Retry-After: 0``)."""

    status_code, fault, title = 413, "overLimit", "Request Entity Too Large"
    retry_after = "0"


class BadMediaType(CloudError):
    """Unsupported Content-Type"""

    status_code, fault, title = 415, "badMediaType", "Unsupported Media Type"


class IllegalTransition(CloudError):
    """A state table has no such edge: a bug of the lab cloud."""
