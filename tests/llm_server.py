"""A small OpenAI-compatible HTTP server for tests and benchmarks: scripted answers and faults, every request logged.

Endpoints: GET /v1/models, POST /v1/chat/completions, POST /v1/files (multipart), GET /v1/files/<id>/content,
POST /v1/batches, GET /v1/batches/<id>. It runs in a daemon thread on 127.0.0.1, port 0 (any free port).

A chat request is matched to its document by the text between `<document>` and `</document>` in the user message
(the fence `apex.erm.prompts` puts around every document). Per document, tests may script

- `answers[doc]` / `query_answers[doc]`: the message content to return to the map / query prompt (default: a small
  valid map built from the document's capitalised words, or `{"query": "what about <first five words>"}`);
- `faults[doc]`: a list consumed one per request: "ok", "429" (Retry-After: `retry_after` s), "500", "hang" (sleeps
  `hang_s` before answering, to trip a client timeout), "malformed" (content that is not JSON), "schema" (JSON that
  breaks the map schema), "length" (a cut-off answer with finish_reason "length"), "400", "401", "html" (HTTP 200
  with an HTML proxy page, Content-Type text/html), "badjson" (HTTP 200, Content-Type application/json, body not JSON).

`reject=("json_schema", "schema", "seed")` refuses those request fields as real servers do (llama-cpp-python
answers a `json_schema` response_format with HTTP 422; a strict proxy refuses an unknown `seed` with 400).

Whole-server failures: `die_after=n` kills the server (closes its socket: later requests get "connection refused")
right after it answered n chat requests; `kill()` does it at once. `FakeLLMServer(port=p)` binds a given port, so a
test can bring a killed server back at the same base URL.

`log` holds one dict per request: path, doc (or None), fault, response_format type, model, temperature, seed,
number of messages; `max_in_flight` is the most chat requests it was answering at once.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_DOC = re.compile(r"<document>\n(.*)\n</document>", re.DOTALL)


def default_map(doc: str) -> dict[str, Any]:
    """A valid map from the document's capitalised words (first five, unique); no capitals → no entities."""
    names = list(dict.fromkeys(w.strip(".,;:!?\"'()") for w in doc.split() if w[:1].isupper()))[:5]
    names = [n for n in names if n]
    entities = [
        {"name": n, "type": "other", "attributes": [{"key": "position", "value": str(i)}]} for i, n in enumerate(names)
    ]
    relations = [
        {"subject": a, "predicate": "precedes", "object": b, "qualifiers": []} for a, b in itertools.pairwise(names)
    ]
    return {"entities": entities, "relations": relations}


class FakeLLMServer:
    """Start with `with FakeLLMServer() as srv:`; `srv.base_url` is the OpenAI base URL (…/v1)."""

    def __init__(self, *, latency_s: float = 0.0, hang_s: float = 2.0, retry_after: float = 0.05,
                 require_key: str | None = None, batch_polls: int = 1, die_after: int | None = None,
                 port: int = 0, reject: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.latency_s = latency_s
        self.hang_s = hang_s
        self.retry_after = retry_after
        self.require_key = require_key
        self.batch_polls = batch_polls  # retrieves that report in_progress before a batch completes
        self.answers: dict[str, str] = {}
        self.query_answers: dict[str, str] = {}
        self.faults: dict[str, list[str]] = {}
        self.log: list[dict[str, Any]] = []
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.in_flight = 0  # chat requests being answered now, and the most seen at once
        self.max_in_flight = 0
        self.die_after = die_after
        self.reject = reject  # fields refused like real servers do: "json_schema" (422), "schema", "seed" (400)
        self.answered = 0  # chat requests answered (any status)
        self._lock = threading.Lock()
        self._dead = False
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def kill(self) -> None:
        """Stop serving and close the listening socket (idempotent); requests in progress still get their answer."""
        with self._lock:
            if self._dead:
                return
            self._dead = True
        self._server.shutdown()
        self._server.server_close()

    # -- inspection ----------------------------------------------------------------------------------------------
    def chat_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.log if r["path"] == "/v1/chat/completions"]

    def requests_for(self, doc: str) -> int:
        return sum(1 for r in self.chat_log() if r["doc"] == doc)

    # -- behaviour -----------------------------------------------------------------------------------------------
    def _next_fault(self, doc: str | None) -> str:
        with self._lock:
            queue = self.faults.get(doc or "", [])
            return queue.pop(0) if queue else "ok"

    def complete(self, body: dict[str, Any], fault: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        """(status, JSON body, extra headers) of a chat completion for `body`, with `fault` applied."""
        messages = body.get("messages", [])
        user = next((m["content"] for m in messages if m.get("role") == "user"), "")
        match = _DOC.search(user)
        doc = match.group(1) if match else ""
        if fault == "429":
            return (
                429,
                {"error": {"message": "rate limited", "type": "rate_limit"}},
                {"Retry-After": str(self.retry_after)},
            )
        if fault == "500":
            return 500, {"error": {"message": "boom", "type": "server_error"}}, {}
        if fault == "400":
            return 400, {"error": {"message": "context length exceeded", "type": "invalid_request_error"}}, {}
        if fault == "401":
            return 401, {"error": {"message": "bad key", "type": "invalid_request_error"}}, {}
        fmt = body.get("response_format") or {}
        if "json_schema" in self.reject and fmt.get("type") == "json_schema":  # llama-cpp-python's pydantic answer
            return 422, {"detail": [{"type": "literal_error", "loc": ["body", "response_format", "type"],
                                     "msg": "Input should be 'text' or 'json_object'"}]}, {}  # fmt: skip
        if "schema" in self.reject and "schema" in fmt:
            return 400, {"error": {"message": "response_format.schema is not supported", "type": "invalid"}}, {}
        if "seed" in self.reject and "seed" in body:
            return 400, {"error": {"message": "Unrecognized request argument supplied: seed", "type": "invalid"}}, {}
        is_query = "search quer" in (messages[0].get("content", "") if messages else "")
        if is_query and doc in self.query_answers:
            content = self.query_answers[doc]
        elif not is_query and doc in self.answers:
            content = self.answers[doc]
        elif is_query:
            content = json.dumps({"query": "what about " + " ".join(doc.split()[:5])})
        else:
            content = json.dumps(default_map(doc))
        finish = "stop"
        if fault == "malformed":
            content = '{"entities": [ {"name": "oops"'
        elif fault == "schema":
            content = json.dumps(
                {"entities": [], "relations": [{"subject": "X", "predicate": "p", "object": "Y", "qualifiers": []}]}
            )
        elif fault == "length":
            content, finish = content[: max(len(content) // 2, 1)], "length"
        prompt_chars = sum(len(m.get("content", "")) for m in messages)
        return 200, {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
            "model": f"{body.get('model', 'fake')}-served", "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "finish_reason": finish,
                         "message": {"role": "assistant", "content": content, "refusal": None}}],
            "usage": {"prompt_tokens": prompt_chars // 4, "completion_tokens": len(content) // 4,
                      "total_tokens": prompt_chars // 4 + len(content) // 4},
        }, {}  # fmt: skip

    def _run_batch(self, batch: dict[str, Any]) -> None:
        out_lines = []
        for line in self.files[batch["input_file_id"]].decode("utf-8").splitlines():
            req = json.loads(line)
            user = next((m["content"] for m in req["body"]["messages"] if m.get("role") == "user"), "")
            match = _DOC.search(user)
            doc = match.group(1) if match else None
            fault = self._next_fault(doc)
            with self._lock:
                self.log.append({"path": "batch-line", "doc": doc, "fault": fault})
            status, body, _ = self.complete(req["body"], fault)
            out_lines.append(
                json.dumps(
                    {
                        "id": f"req-{uuid.uuid4().hex[:8]}",
                        "custom_id": req["custom_id"],
                        "response": {"status_code": status, "body": body},
                        "error": None,
                    }
                )
            )
        file_id = f"file-{uuid.uuid4().hex[:12]}"
        self.files[file_id] = ("\n".join(out_lines) + "\n").encode("utf-8")
        batch.update(status="completed", output_file_id=file_id, completed_at=int(time.time()))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle's algorithm on, the body waits for the client's
            # delayed ACK (about 40 ms per response on Linux), which would dwarf the latency we mean to simulate.
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None):
                data = raw if raw is not None else json.dumps(body).encode("utf-8")
                try:
                    self.send_response(status)
                    headers = dict(headers or {})
                    kind = headers.pop(
                        "Content-Type", "application/json" if raw is None else "application/octet-stream"
                    )
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def _authorised(self) -> bool:
                if server.require_key is None:
                    return True
                if self.headers.get("Authorization") == f"Bearer {server.require_key}":
                    return True
                self._send(401, {"error": {"message": "invalid api key", "type": "invalid_request_error"}})
                return False

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _dead(self) -> bool:
                """A killed server drops kept-alive connections too: no answer, the client sees a disconnect."""
                if server._dead:
                    self.close_connection = True
                return server._dead

            def do_GET(self) -> None:
                if self._dead():
                    return
                with server._lock:
                    server.log.append({"path": self.path, "doc": None, "fault": ""})
                if not self._authorised():
                    return
                if self.path == "/v1/models":
                    self._send(200, {"object": "list", "data": [
                        {"id": "fake-model", "object": "model", "created": 0, "owned_by": "tests"}]})  # fmt: skip
                elif m := re.fullmatch(r"/v1/files/([\w-]+)/content", self.path):
                    self._send(200, None, raw=server.files[m.group(1)])
                elif m := re.fullmatch(r"/v1/batches/([\w-]+)", self.path):
                    batch = server.batches[m.group(1)]
                    batch["_polls"] += 1
                    if batch["status"] != "completed":
                        if batch["_polls"] > server.batch_polls:
                            server._run_batch(batch)
                        else:
                            batch["status"] = "in_progress"
                    self._send(200, {k: v for k, v in batch.items() if not k.startswith("_")})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                raw = self._body()
                if self._dead():
                    return
                if self.path == "/v1/chat/completions":
                    body = json.loads(raw)
                    user = next((m["content"] for m in body.get("messages", []) if m.get("role") == "user"), "")
                    match = _DOC.search(user)
                    doc = match.group(1) if match else None
                    fault = server._next_fault(doc)
                    with server._lock:
                        server.log.append({
                            "path": self.path, "doc": doc, "fault": fault, "model": body.get("model"),
                            "response_format": (body.get("response_format") or {}).get("type"),
                            "body": body,
                            "temperature": body.get("temperature"), "seed": body.get("seed"),
                            "n_messages": len(body.get("messages", [])), "t": time.monotonic(),
                        })  # fmt: skip
                    if not self._authorised():
                        return
                    with server._lock:
                        server.in_flight += 1
                        server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    try:
                        if server.latency_s:
                            time.sleep(server.latency_s)
                        if fault == "hang":
                            time.sleep(server.hang_s)
                        status, payload, headers = server.complete(body, fault)
                    finally:
                        with server._lock:
                            server.in_flight -= 1
                    if fault == "html":
                        page = b"<html><body><h1>502 Bad Gateway</h1>proxy error</body></html>"
                        self._send(200, None, {"Content-Type": "text/html"}, raw=page)
                    elif fault == "badjson":
                        self._send(200, None, {"Content-Type": "application/json"}, raw=b"<html>oops</html>")
                    else:
                        self._send(status, payload, headers)
                    with server._lock:
                        server.answered += 1
                        dying = server.die_after is not None and server.answered >= server.die_after
                    if dying:
                        threading.Thread(target=server.kill, daemon=True).start()
                    return
                with server._lock:
                    server.log.append({"path": self.path, "doc": None, "fault": ""})
                if not self._authorised():
                    return
                if self.path == "/v1/files":
                    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                        f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + raw
                    )
                    part = next(
                        p for p in msg.iter_parts() if p.get_param("name", header="content-disposition") == "file"
                    )
                    file_id = f"file-{uuid.uuid4().hex[:12]}"
                    server.files[file_id] = part.get_payload(decode=True)
                    self._send(200, {"id": file_id, "object": "file", "bytes": len(server.files[file_id]),
                                     "created_at": int(time.time()), "filename": "input.jsonl",
                                     "purpose": "batch", "status": "processed"})  # fmt: skip
                elif self.path == "/v1/batches":
                    body = json.loads(raw)
                    batch_id = f"batch_{uuid.uuid4().hex[:12]}"
                    server.batches[batch_id] = {
                        "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "input_file_id":
                        body["input_file_id"], "completion_window": body["completion_window"], "status": "validating",
                        "created_at": int(time.time()), "output_file_id": None, "error_file_id": None, "_polls": 0,
                    }  # fmt: skip
                    self._send(200, {k: v for k, v in server.batches[batch_id].items() if not k.startswith("_")})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

        return Handler


def main() -> None:
    """`python tests/llm_server.py --latency 0.2`: serve in the foreground; prints the base URL on its first line."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every chat request")
    parser.add_argument("--port", type=int, default=0, help="port to bind (0: any free port)")
    parser.add_argument("--die-after", type=int, default=None, help="stop serving after this many chat requests")
    args = parser.parse_args()
    with FakeLLMServer(latency_s=args.latency, port=args.port, die_after=args.die_after) as srv:
        print(srv.base_url, flush=True)
        while not srv._dead:
            time.sleep(0.2)


if __name__ == "__main__":
    main()
