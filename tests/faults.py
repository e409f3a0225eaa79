"""A fault-injecting proxy in front of moto server, on 127.0.0.1: the functions' AWS calls cross real HTTP
and fail as AWS fails them (a 500, a throttle, a timeout, a reset or cut connection, a transaction
cancelled, an answer lost after the write), so the code under test runs unchanged, botocore's retries
included. It also keeps two of DynamoDB's guarantees that moto lacks: a write and its condition are one
atomic step, and a TransactWriteItems whose ClientRequestToken succeeded succeeds again, writing nothing."""

import http.client
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems"}
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}
ERRORS = {  # kind -> (status, AWS JSON error type, message)
    "500": (500, "InternalServerError", "Internal server error (injected)"),
    "throttle": (400, "com.amazonaws.dynamodb.v20120810#ThrottlingException", "Rate exceeded (injected)"),
    "secrets-500": (500, "InternalServiceError", "An error occurred (injected)"),
}


@dataclass
class Fault:
    kind: str  # a key of ERRORS, or slow, reset, cut, garbled, cancel, conflict, lost, race (``first``, then the call)
    times: int | None = None  # how many calls it hits; None: every one until cleared
    delay: float = 3.0  # slow: seconds before forwarding
    first: Callable[[], None] | None = None  # race: what another caller does just before this call lands


@dataclass
class Call:
    operation: str
    body: dict
    answered: int | str  # the status sent, or what happened to the connection


@dataclass
class FaultProxy:
    upstream: tuple[str, int]
    faults: dict[str, Fault] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    url: str = ""  # where it serves, once serving
    _tokens: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # DynamoDB applies each write atomically, its condition with it; moto server does not lock, so two
    # concurrent writes could both pass their conditions there. The proxy applies writes one at a time.
    _writing: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, operation: str, kind: str, times: int | None = None, delay: float = 3.0, first=None) -> None:
        self.faults[operation] = Fault(kind, times, delay, first)

    def clear(self) -> None:
        self.faults.clear()

    def attempts(self, operation: str) -> list[Call]:
        return [call for call in self.calls if call.operation == operation]

    def _take(self, operation: str) -> Fault | None:
        with self._lock:
            fault = self.faults.get(operation)
            if fault is None:
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self.faults[operation]
            return fault

    def serve(self) -> tuple[ThreadingHTTPServer, str]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2] or self.path
                try:
                    proxy._handle(self, operation, body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up first (a slow fault)
                    self.close_connection = True

            do_GET = do_PUT = do_DELETE = do_PATCH = do_POST

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}"

    def _handle(self, handler: BaseHTTPRequestHandler, operation: str, body: bytes) -> None:
        request = json.loads(body) if body.startswith(b"{") else {}
        fault = self._take(operation)
        token = request.get("ClientRequestToken") if operation == "TransactWriteItems" else None

        call = Call(operation, request, "pending")  # counted on arrival: a slow call's client may give up first
        with self._lock:
            self.calls.append(call)

        def record(answered) -> None:
            call.answered = answered

        if fault is not None and fault.kind == "race":
            fault.first()
        if fault is not None and fault.kind in ERRORS:
            status, kind, message = ERRORS[fault.kind]
            record(status)
            return _answer(handler, status, {"__type": kind, "message": message})
        if fault is not None and fault.kind in ("cancel", "conflict"):
            # cancel: the key's write fine, the audit record's condition not; conflict: another transaction
            # on the same item at the same moment (DynamoDB's TransactionConflict, which botocore does not retry)
            record(400)
            reason = "ConditionalCheckFailed" if fault.kind == "cancel" else "TransactionConflict"
            reasons = [{"Code": "None"}, {"Code": reason, "Message": f"{reason} (injected)"}]
            return _answer(handler, 400, {
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                "message": "Transaction cancelled, please refer cancellation reasons for specific reasons "
                f"[None, {reason}]", "CancellationReasons": reasons,
            })  # fmt: skip
        if fault is not None and fault.kind == "reset":
            record("reset")
            handler.close_connection = True
            return handler.connection.close()
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)
        if operation in WRITES:
            with self._writing:  # a retry of a token in flight waits for it, then finds it done
                if fault is None and token is not None and token in self._tokens:
                    record(200)  # DynamoDB: a token's transaction that succeeded succeeds again, writing nothing
                    return _answer(handler, 200, {})
                status, headers, answer = self._forward(handler, body)
                if status == 200 and token is not None:
                    self._tokens.add(token)
        else:
            status, headers, answer = self._forward(handler, body)
        if fault is not None and fault.kind == "lost":  # written upstream; the answer never arrives
            record("lost")
            return _answer(handler, 500, {"__type": "InternalServerError", "message": "injected after the write"})
        cut = fault is not None and fault.kind == "cut"  # half the answer (its headers whole), then the close
        if fault is not None and fault.kind == "garbled":  # the whole answer, one letter of a value changed
            answer = _garbled(answer)
        record(fault.kind if fault is not None and fault.kind in ("cut", "garbled") else status)
        handler.send_response(status)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP:
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(answer)))
        handler.end_headers()
        handler.wfile.write(answer[: len(answer) // 2] if cut else answer)
        handler.close_connection = cut
        return None

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, list, bytes]:
        connection = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            headers = {name: value for name, value in handler.headers.items() if name.lower() not in HOP_BY_HOP}
            connection.request(handler.command, handler.path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()


def _answer(handler: BaseHTTPRequestHandler, status: int, document: dict) -> None:
    payload = json.dumps(document).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/x-amz-json-1.0")
    handler.send_header("x-amzn-ErrorType", document.get("__type", "").rpartition("#")[2])
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


def _garbled(answer: bytes) -> bytes:
    """The answer with the first letter of its first string value changed: still JSON, still its length, but
    no longer what its CRC32 header (x-amz-crc32) vouches for."""
    at = re.search(rb'":\s*"', answer).end()  # moto writes ": ", DynamoDB ":"
    letter = answer[at : at + 1]
    return answer[:at] + (b"x" if letter != b"x" else b"y") + answer[at + 1 :]
