"""The one exception root of the product. Each class carries its HTTP status;
the API maps any OrchestratorError to one JSON error shape, the CLI to one
exit code. A client's bad input is 4xx, our own faults are 5xx."""
from __future__ import annotations


class OrchestratorError(Exception):
    """Something went wrong in the orchestrator."""

    status_code = 500

    def __init__(self, message: str | None = None):
        super().__init__(message or (self.__doc__ or "").strip())
        self.message = message or (self.__doc__ or "").strip()

    def to_dict(self) -> dict:
        return {"error": type(self).__name__, "message": self.message}


class InvalidInput(OrchestratorError):
    """The request or input is not valid."""

    status_code = 400


class Problem:
    """One validation problem: where it is and what to do about it."""

    __slots__ = ("file", "line", "path", "message")

    def __init__(self, path: str, message: str, line: int = 0, file: str | None = None):
        self.file, self.line, self.path, self.message = file, line, path, message

    def __str__(self) -> str:
        where = f"{self.file or '<input>'}:{self.line}" if self.line else (self.file or "<input>")
        return f"{where} {self.path}: {self.message}" if self.path else f"{where}: {self.message}"

    def to_dict(self) -> dict:
        return {"path": self.path, "line": self.line, "message": self.message}

    def __repr__(self) -> str:
        return f"Problem({str(self)!r})"


class InvalidDefinition(InvalidInput):
    """The workbook or workflow definition is not valid."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    def to_dict(self) -> dict:
        d = super().to_dict()
        d["problems"] = [p.to_dict() for p in self.problems]
        return d


class ExpressionError(OrchestratorError):
    """An expression could not be evaluated."""

    status_code = 400

    def __init__(self, expression: str, reason: str):
        self.expression, self.reason = expression, reason
        super().__init__(f"{reason} in expression {expression!r}")


class NotFound(OrchestratorError):
    """The requested object does not exist."""

    status_code = 404


class Conflict(OrchestratorError):
    """The requested change is not allowed in the object's current state."""

    status_code = 409


class IllegalTransition(Conflict):
    """A state change that the transition table does not allow."""


class ActionError(OrchestratorError):
    """An action failed. ``data`` is the error value stored as its result;
    ``retryable`` False stops a task's retry policy from trying again."""

    status_code = 500

    def __init__(self, message: str, data=None, retryable: bool = True):
        super().__init__(message)
        self.data = data if data is not None else message
        self.retryable = retryable
