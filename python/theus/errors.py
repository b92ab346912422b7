"""Errors that cross a process boundary: a stable code, a message, a path.

The codes are those of the Go SDK (protocol/errors.go). A process may
raise codes of its own with Fail; a client gets every error as an Error
(or the subclass that names its code), so both of

    except theus.NotFound: ...
    except theus.Error as e: if e.code == "insufficient_funds": ...

work.
"""

UNKNOWN_PROCESS = "unknown_process"  # no worker registers that name
BAD_ARGS = "bad_args"  # args do not decode into the process's arguments
CONTRACT_VIOLATION = "contract_violation"  # a read or write outside the contract; path names it
RETRY_LIMIT = "retry_limit"  # every allowed attempt conflicted
WORKER_CRASHED = "worker_crashed"  # the worker died on every allowed dispatch
TIMEOUT = "timeout"  # the invocation ran past its deadline
CANCELED = "canceled"  # the caller went away
SHUTTING_DOWN = "shutting_down"  # the supervisor is draining
BAD_REQUEST = "bad_request"  # a malformed request (bad path, bad op id, ...)
BAD_FRAME = "bad_frame"  # bytes that are not a valid frame or message
PROTOCOL_MISMATCH = "protocol_mismatch"  # a handshake with the wrong magic or version
PROCESS_FAILED = "process_failed"  # the process failed without a code of its own
INTERNAL = "internal"  # a bug in theus
ARENA_FULL = "arena_full"  # the worker's HEAVY slab has no block that large free
BAD_TENSOR = "bad_tensor"  # a HEAVY value that is not a valid tensor of the caller's
NOT_DURABLE = "not_durable"  # the supervisor can no longer write commits to disk
OP_ID_CONFLICT = "op_id_conflict"  # the op id was committed by another call
NOT_FOUND = "not_found"  # a Get of a path with nothing at or under it; path names it
TOO_MANY_CLIENTS = "too_many_clients"  # the supervisor serves --max-clients connections already
SCHEMA_VIOLATION = "schema_violation"  # a value the commit would write fails the --schema file
AUDIT_ABORT = "audit_abort"  # an audit rule of level A refused the call
AUDIT_BLOCK = "audit_block"  # an audit rule of level B passed its threshold_max
AUDIT_STOP = "audit_stop"  # an audit rule of level S stopped the process
REMOTE_TENSOR = "remote_tensor"  # a HEAVY tensor in another supervisor's arena (--store etcd); path names it
FENCED = "fenced"  # a workflow run's or machine's commit refused: another supervisor owns it now


class Error(Exception):
    """An error with a code (lower snake case), a message and a path.

    Two errors with the same code are the same error: compare codes, or
    catch the subclass of a code theus uses (NotFound, Timeout, ...).
    """

    code = ""

    def __init__(self, code, message="", path=""):
        super().__init__(code, message, path)
        self.code, self.message, self.path = code, message, path

    def __str__(self):
        s = self.code if not self.message else "%s: %s" % (self.code, self.message)
        return s + (" (%s)" % self.path if self.path and self.path not in self.message else "")

    def __repr__(self):
        return "%s(%r, %r, %r)" % (type(self).__name__, self.code, self.message, self.path)

    def __eq__(self, other):
        return isinstance(other, Error) and other.code == self.code

    def __hash__(self):
        return hash(self.code)

    def wire(self):
        """The Error tuple: [code, message, path]."""
        return [self.code, self.message, self.path]

    @staticmethod
    def from_wire(t):
        """The Error of an Error tuple, as the subclass of its code."""
        code, message, path = t
        cls = _BY_CODE.get(code, Error)
        e = Exception.__new__(cls)
        Error.__init__(e, code, message, path)
        return e


class Fail(Error):
    """Raise Fail(code, message, path="") from a process to fail the call
    with a code of its own; it reaches the client unchanged."""


_BY_CODE = {}


def _code_class(name, code, doc):
    def __init__(self, message="", path=""):
        Error.__init__(self, code, message, path)

    cls = type(name, (Error,), {"code": code, "__init__": __init__, "__doc__": doc})
    _BY_CODE[code] = cls
    return cls


UnknownProcess = _code_class("UnknownProcess", UNKNOWN_PROCESS, "No worker registers that process.")
BadArgs = _code_class("BadArgs", BAD_ARGS, "The args are not JSON, do not bind the templates, or do not fit the process.")
ContractViolation = _code_class("ContractViolation", CONTRACT_VIOLATION, "A read or write outside the contract; path names it.")
RetryLimit = _code_class("RetryLimit", RETRY_LIMIT, "Every allowed attempt conflicted.")
WorkerCrashed = _code_class("WorkerCrashed", WORKER_CRASHED, "The worker died on every allowed dispatch.")
Timeout = _code_class("Timeout", TIMEOUT, "The execute ran past its timeout (in a process: its deadline passed).")
Canceled = _code_class("Canceled", CANCELED, "The caller went away (in a process: the supervisor sent a Cancel).")
ShuttingDown = _code_class("ShuttingDown", SHUTTING_DOWN, "The supervisor is draining.")
BadRequest = _code_class("BadRequest", BAD_REQUEST, "A malformed request.")
BadFrame = _code_class("BadFrame", BAD_FRAME, "Bytes that are not a valid frame or message.")
ProtocolMismatch = _code_class("ProtocolMismatch", PROTOCOL_MISMATCH, "A handshake with the wrong magic, version or processes.")
ProcessFailed = _code_class("ProcessFailed", PROCESS_FAILED, "The process failed without a code of its own.")
Internal = _code_class("Internal", INTERNAL, "A bug in theus.")
ArenaFull = _code_class("ArenaFull", ARENA_FULL, "The worker's HEAVY slab has no free block that large.")
BadTensor = _code_class("BadTensor", BAD_TENSOR, "A HEAVY value that is not a valid tensor of the caller's.")
NotDurable = _code_class("NotDurable", NOT_DURABLE, "The supervisor can no longer write commits to disk.")
OpIDConflict = _code_class("OpIDConflict", OP_ID_CONFLICT, "The op id was committed by another call.")
NotFound = _code_class("NotFound", NOT_FOUND, "Nothing at or under the path; path names it.")
TooManyClients = _code_class("TooManyClients", TOO_MANY_CLIENTS, "The supervisor serves --max-clients connections already.")
SchemaViolation = _code_class("SchemaViolation", SCHEMA_VIOLATION, "A value the commit would write fails the --schema file.")
AuditAbort = _code_class("AuditAbort", AUDIT_ABORT, "An audit rule of level A refused the call.")
AuditBlock = _code_class("AuditBlock", AUDIT_BLOCK, "An audit rule of level B passed its threshold_max.")
AuditStop = _code_class("AuditStop", AUDIT_STOP, "An audit rule of level S stopped the process.")
RemoteTensor = _code_class("RemoteTensor", REMOTE_TENSOR, "A HEAVY tensor lives in another supervisor's arena (--store etcd); path names it.")
Fenced = _code_class("Fenced", FENCED, "A workflow run's or machine's commit was refused: another supervisor owns it now (--store etcd).")

# Every code theus itself uses, in the order of protocol/errors.go.
CODES = (UNKNOWN_PROCESS, BAD_ARGS, CONTRACT_VIOLATION, RETRY_LIMIT, WORKER_CRASHED, TIMEOUT,
         CANCELED, SHUTTING_DOWN, BAD_REQUEST, BAD_FRAME, PROTOCOL_MISMATCH, PROCESS_FAILED,
         INTERNAL, ARENA_FULL, BAD_TENSOR, NOT_DURABLE, OP_ID_CONFLICT, NOT_FOUND,
         TOO_MANY_CLIENTS, SCHEMA_VIOLATION, AUDIT_ABORT, AUDIT_BLOCK, AUDIT_STOP, REMOTE_TENSOR,
         FENCED)


def error_class(code):
    """The subclass of Error for a code theus uses, else Error."""
    return _BY_CODE.get(code, Error)


class ConnectionLost(ConnectionError):
    """The connection to the supervisor ended (a request in flight may
    have committed: send it again with the same op id)."""
