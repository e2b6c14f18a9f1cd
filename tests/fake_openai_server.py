"""A local HTTP server that speaks the chat-completions protocol, scripted per test (and per benchmark).

It is a real server on 127.0.0.1 (stdlib, one thread per connection) so the real `openai` client is
driven end to end. Each request takes the next scripted action, or the default responder when the
script is empty; every request is counted and its body kept.
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted reaction to a request."""

    content: str | None = None  # the assistant message content (200 response)
    status: int = 200
    error: str = ""  # error message for non-200 statuses
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (for timeouts)
    raw_body: bytes | None = None  # send exactly these bytes with status 200 (a broken server)
    content_type: str = "application/json"
    drip: float = 0.0  # seconds between single bytes of the body (a server that never times out a read)


def valid_analysis(title: str = "Misread the question", confidence: float | None = 0.8) -> str:
    """A stage-1 answer that satisfies the schema."""
    answer: dict[str, Any] = {
        "required_criteria": [
            {
                "criterion": "Reads the question correctly",
                "present_in_wrong": True,
                "quality": "incorrect",
                "evidence": "the answer is 20",
                "comment": "the model answered a different question",
            }
        ],
        "final_answer": {"error_title": title, "error_summary": "It solved another problem."},
    }
    if confidence is not None:
        answer["confidence"] = confidence
    return json.dumps(answer)


class FakeOpenAIServer:
    """Start with `with FakeOpenAIServer() as server:`; point the client at `server.base_url`."""

    def __init__(self, responder: Callable[[dict[str, Any]], Reply] | None = None) -> None:
        self.responder = responder or (lambda body: Reply(content=valid_analysis()))
        self.script: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.reject_response_formats: set[str] = set()  # e.g. {"json_schema"}: answer 400 to those
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                with server._lock:
                    server.requests.append(body)
                    reply = server.script.popleft() if server.script else None
                fmt = (body.get("response_format") or {}).get("type")
                if fmt in server.reject_response_formats:
                    return self._send(
                        400, {"error": {"message": f"response_format {fmt} is not supported", "type": "invalid_request_error"}}
                    )
                if reply is None:
                    reply = server.responder(body)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.status != 200:
                    return self._send(reply.status, {"error": {"message": reply.error or "scripted error"}}, reply.headers)
                data = reply.raw_body if reply.raw_body is not None else json.dumps(
                    completion(body.get("model", "fake"), reply.content or "")).encode()
                self._send(200, data, reply.headers, content_type=reply.content_type, drip=reply.drip)

            def _send(self, status: int, payload: dict[str, Any] | bytes, headers: dict[str, str] | None = None,
                      *, content_type: str = "application/json", drip: float = 0.0) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.end_headers()
                    if not drip:
                        self.wfile.write(data)
                        return
                    self.wfile.flush()
                    for i in range(len(data)):
                        time.sleep(drip)
                        self.wfile.write(data[i:i + 1])
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): nothing to answer

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self.script.extend(replies)

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_COUNTER = iter(range(10**12))


def completion(model: str, content: str) -> dict[str, Any]:
    """A chat.completion object as the API returns it."""
    return {
        "id": f"chatcmpl-fake-{next(_COUNTER)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    }


def main() -> None:
    """Serve valid stage-1 answers at once until killed (the benchmark runs it in its own process)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="a chat-completions server that answers at once")
    parser.parse_args()
    server = FakeOpenAIServer()
    print(server.base_url, flush=True)  # the port is chosen by the OS; the parent reads this line
    sys.stdout.flush()
    server._httpd.serve_forever()


if __name__ == "__main__":
    main()
