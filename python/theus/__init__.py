"""theus, the Python SDK: workers that run processes for a theus
supervisor, and clients that call them, on the wire protocol of
docs/PROTOCOL.md.

A worker plugin:

    #!/usr/bin/python3
    import theus

    @theus.process("greet", inputs=["domain.greetings"], outputs=["domain.greetings"])
    def greet(ctx, name):
        n = ctx.get("domain.greetings." + name, 0) + 1
        ctx.set("domain.greetings." + name, n)
        return {"greeting": "hello, " + name, "count": n}

    if __name__ == "__main__":
        theus.serve()

run with theus-supervisor --plugin greeter.py, and a client:

    with theus.Client() as c:
        print(c.exec("greet", {"name": "ada"}).value)

theus.testing runs a process in-process, against a dict, for unit tests.
"""

from .client import Client, Entry, Result, Value, default_socket, new_op_id
from .errors import (CODES, ArenaFull, AuditAbort, AuditBlock, AuditStop, BadArgs, BadFrame,
                     BadRequest, BadTensor, Canceled, ConnectionLost, ContractViolation, Error,
                     Fail, Fenced, Internal, NotDurable, NotFound, OpIDConflict, ProcessFailed,
                     ProtocolMismatch, RemoteTensor, RetryLimit, SchemaViolation, ShuttingDown, Timeout,
                     TooManyClients, UnknownProcess, WorkerCrashed, error_class)
from .processes import Ctx, Process, log, process
from .wire import MAGIC, VERSION
from .worker import WorkerError, launched, serve

__all__ = [
    "process", "serve", "launched", "Ctx", "Process", "log", "Client", "Result", "Value", "Entry",
    "default_socket", "new_op_id", "Error", "Fail", "CODES", "error_class", "ConnectionLost",
    "WorkerError", "MAGIC", "VERSION",
    "UnknownProcess", "BadArgs", "ContractViolation", "RetryLimit", "WorkerCrashed", "Timeout",
    "Canceled", "ShuttingDown", "BadRequest", "BadFrame", "ProtocolMismatch", "ProcessFailed",
    "Internal", "ArenaFull", "BadTensor", "NotDurable", "OpIDConflict", "NotFound",
    "TooManyClients", "SchemaViolation", "AuditAbort", "AuditBlock", "AuditStop", "RemoteTensor",
    "Fenced",
]
