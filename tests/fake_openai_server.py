"""A local HTTP server that speaks the chat-completions protocol, scripted per test (and per benchmark).

It is a real server on 127.0.0.1 (stdlib, one thread per connection) so the real `openai` client is
driven end to end. Each request takes the next scripted action, or the default responder when the
script is empty; every request is counted and its body kept. `answer_every_stage` answers each judge
stage (analysis; taxonomy generate, update, review; classify) with a valid, deterministic answer, so
the OpenAI path runs end to end without a key (`scripts/fake-judge` serves it).
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


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


# --- a stand-in judge for every stage -----------------------------------------------------------
# Not a judgement: plausible answers picked deterministically from the request, valid for each stage's
# schema, so that induction, classification and pre-labelling see several distinct categories.

STAND_IN_TITLES: dict[str, tuple[str, str]] = {  # error title -> (category, its description)
    "Arithmetic slip in a middle step": ("Calculation Errors", "Wrong arithmetic inside otherwise sound working."),
    "Carried a wrong intermediate value": ("Calculation Errors", "Wrong arithmetic inside otherwise sound working."),
    "Misread what the question asks": ("Comprehension Errors", "The task or its constraints were misunderstood."),
    "Ignored a stated constraint": ("Comprehension Errors", "The task or its constraints were misunderstood."),
    "Answer not in the required format": ("Format Violations", "The answer's form breaks the requested format."),
    "Stopped before the final answer": ("Incomplete Answers", "The answer ends before the task is done."),
    "Lost track of the objects' state": ("State Tracking Errors", "Failed to keep track of changing state."),
    "Items put in the wrong order": ("State Tracking Errors", "Failed to keep track of changing state."),
    "Recalled a wrong fact": ("Knowledge Errors", "A fact the answer relies on is wrong."),
    "Mistranslated a key term": ("Knowledge Errors", "A fact the answer relies on is wrong."),
}
HARD = ("Hard to Analyze", "Errors whose cause the titles do not show.")


def _stand_in_title(text: str) -> str:
    titles = sorted(STAND_IN_TITLES)
    return titles[int(hashlib.sha256(text.encode()).hexdigest(), 16) % len(titles)]


def _between(text: str, start: str, end: str) -> str:
    i = text.find(start)
    j = text.find(end, i + len(start)) if i >= 0 else -1
    return text[i + len(start):j] if i >= 0 and j >= 0 else ""


def _json_after(text: str, marker: str) -> Any:
    """The JSON value that follows `marker` in a prompt (None when absent or broken)."""
    i = text.lower().find(marker.lower())
    if i < 0:
        return None
    start = min((k for k in (text.find("[", i), text.find("{", i)) if k >= 0), default=-1)
    try:
        return json.JSONDecoder().raw_decode(text[start:])[0] if start >= 0 else None
    except ValueError:
        return None


def _category_of(title: str) -> tuple[str, str]:
    return STAND_IN_TITLES.get(" ".join(title.split()), HARD)


def _categories_for(titles: list[str], current: list[dict[str, str]]) -> list[dict[str, str]]:
    """One category per family of titles seen; like many judges it ignores the "at most N" it was
    asked for, so the platform's limit (and what it drops) can be seen at work."""
    out = {c["name"]: c for c in current if isinstance(c, dict) and c.get("name")}
    for title in titles:
        name, description = _category_of(title)
        out.setdefault(name, {"name": name, "description": description})
    return sorted(out.values(), key=lambda c: c["name"])


def stage_of(body: dict[str, Any]) -> str:
    """analysis, induce_generate, induce_update, induce_review or induce_classify: from the schema name
    (structured output), else from the answer shape the prompt asks for (json_object / plain modes)."""
    name = ((body.get("response_format") or {}).get("json_schema") or {}).get("name", "")
    for stage in ("induce_generate", "induce_update", "induce_review", "induce_classify"):
        if stage in name:
            return stage
    if name:
        return "analysis"
    prompt = next((m["content"] for m in body.get("messages", []) if m.get("role") == "user"), "")
    if '{"assignments"' in prompt:
        return "induce_classify"
    if '"rating"' in prompt:
        return "induce_update" if "<<<TITLES" in prompt else "induce_review"
    if '{"categories"' in prompt:
        return "induce_generate"
    return "analysis"


def answer_every_stage(body: dict[str, Any]) -> Reply:
    """A valid answer for whichever judge stage the request is (the stand-in judge)."""
    prompt = next((m["content"] for m in body.get("messages", []) if m.get("role") == "user"), "")
    stage = stage_of(body)
    if stage == "analysis":
        failed = _between(prompt, "<<<FAILED_ANSWER", "FAILED_ANSWER>>>") or prompt
        return Reply(content=valid_analysis(_stand_in_title(failed), confidence=0.7))
    titles = _json_after(prompt, "<<<TITLES")
    current = _json_after(prompt, "Categories (JSON):") or []
    if stage == "induce_classify":
        names = {c.get("name") for c in current if isinstance(c, dict)}
        numbered = titles if isinstance(titles, dict) else {}
        assignments = [{"id": int(i), "category": _category_of(t)[0] if _category_of(t)[0] in names else "Other"}
                       for i, t in numbered.items() if str(i).isdigit()]
        return Reply(content=json.dumps({"assignments": assignments}))
    counted = list(titles) if isinstance(titles, dict) else []
    categories = _categories_for(counted, current if stage != "induce_generate" else [])
    if stage == "induce_generate":
        return Reply(content=json.dumps({"categories": categories}))
    return Reply(content=json.dumps({"rating": 85, "suggestions": "Keep the list; it covers the titles.",
                                     "categories": categories}))


class FakeOpenAIServer:
    """Start with `with FakeOpenAIServer() as server:`; point the client at `server.base_url`."""

    def __init__(self, responder: Callable[[dict[str, Any]], Reply] | None = None, *, port: int = 0) -> None:
        self.responder = responder or (lambda body: Reply(content=valid_analysis()))
        self.script: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.raw_requests: list[bytes] = []  # the bodies as sent, byte for byte
        self._lock = threading.Lock()
        self.reject_response_formats: set[str] = set()  # e.g. {"json_schema"}: answer 400 to those
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                body = json.loads(raw or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                with server._lock:
                    server.requests.append(body)
                    server.raw_requests.append(raw)
                    reply = server.script.popleft() if server.script else None
                fmt = (body.get("response_format") or {}).get("type")
                if fmt in server.reject_response_formats:
                    return self._send(
                        400, {"error": {"message": f"response_format {fmt} is not supported",
                                        "type": "invalid_request_error"}}
                    )
                if reply is None:
                    reply = server.responder(body)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.status != 200:
                    return self._send(reply.status, {"error": {"message": reply.error or "scripted error"}},
                                      reply.headers)
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

        self._httpd = Server(("127.0.0.1", port), Handler)
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

    def __enter__(self) -> Self:
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
    """Serve valid answers for every judge stage at once until killed (scripts/fake-judge and the
    benchmark run it in its own process); the first line printed is the base URL."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="a chat-completions server answering every judge stage at once")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    args = parser.parse_args()
    server = FakeOpenAIServer(responder=answer_every_stage, port=args.port)
    print(server.base_url, flush=True)  # with port 0 the OS chooses; the parent reads this line
    sys.stdout.flush()
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
