"""Stand-ins for a llama.cpp server (`llama-server`), which cannot be installed here (it is not in
Debian 12). They speak the part of its native protocol boing-server uses: `POST /completion` with a
JSON body (`prompt`, `n_predict`, `temperature`, `stream`, `stop`, `grammar`, ...) answered by a JSON
object whose `content` is the generated text, errors as `{"error": {"code", "message", "type"}}`.
They are NOT language models: the answering stand-in labels a value by a few keywords.

Modes:
  answer   checks each request like llama-server would need it, answers `content` = " <label>";
           counts requests, requests in flight at once (max_concurrent) and the values asked about
  hang     reads the request and never answers (until stopped)
  garbage  answers each request with the next of: a non-JSON body, HTTP 500 with llama.cpp's error
           object, JSON without `content`, a `content` that is not a label, HTTP 503 "Loading model"
"""
import http.server
import json
import re
import threading

LABELS = ("benign", "sqli", "xss", "path_traversal", "cmdi", "ldapi", "nosqli", "other_attack")


def keyword_label(value):
    v = value.lower()
    if "union" in v or "select" in v or "sleep(" in v or "' or " in v:
        return "sqli"
    if "<script" in v or "onerror" in v or "javascript:" in v:
        return "xss"
    if "../" in v:
        return "path_traversal"
    return "benign"


class LlamaCppStandIn:
    """A stand-in for llama-server's /completion on 127.0.0.1 (a port picked at start)."""

    def __init__(self, mode="answer", delay=0.0, model_alias="standin-alias"):
        assert mode in ("answer", "hang", "garbage")
        self.mode = mode
        self.delay = delay  # seconds before each answer (answer mode)
        self.model_alias = model_alias
        self.lock = threading.Lock()
        self.requests = 0            # /completion requests received
        self.in_flight = 0
        self.max_concurrent = 0
        self.values = []             # the value of each request, as found in the prompt
        self.bodies = []             # each request body (parsed)
        self.problems = []           # requests that llama-server would not accept
        self.released = threading.Event()  # set at stop: hanging handlers return
        self._garbage_next = 0
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status, body, content_type="application/json"):
                data = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status, message, kind):
                self._send(status, json.dumps(
                    {"error": {"code": status, "message": message, "type": kind}}))

            def do_GET(self):
                if self.path == "/health":
                    return self._send(200, '{"status":"ok"}')
                self._error(404, "File Not Found", "not_found_error")

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with standin.lock:
                    standin.requests += 1
                    standin.in_flight += 1
                    standin.max_concurrent = max(standin.max_concurrent, standin.in_flight)
                try:
                    self._handle(raw)
                finally:
                    with standin.lock:
                        standin.in_flight -= 1

            def _handle(self, raw):
                if standin.mode == "hang":
                    standin.released.wait()
                    return
                if self.path != "/completion":
                    return self._error(404, "File Not Found", "not_found_error")
                try:
                    body = json.loads(raw)
                except ValueError:
                    standin._problem("body is not JSON")
                    return self._error(400, "invalid JSON", "invalid_request_error")
                problem = check_request(body, self.headers.get("Content-Type", ""))
                value = value_of(body.get("prompt", "")) if isinstance(body, dict) else None
                with standin.lock:
                    standin.bodies.append(body)
                    standin.values.append(value)
                if problem:
                    standin._problem(problem)
                    return self._error(400, problem, "invalid_request_error")
                if standin.mode == "garbage":
                    with standin.lock:
                        k = standin._garbage_next % 5
                        standin._garbage_next += 1
                    if k == 0:
                        return self._send(200, "<html>definitely not json", "text/html")
                    if k == 1:
                        return self._error(500, "failed to decode the prompt", "server_error")
                    if k == 2:
                        return self._send(200, json.dumps({"tokens": [], "stop": True}))
                    if k == 3:
                        return self._send(200, json.dumps({"content": " maybe, hard to say",
                                                           "stop": True}))
                    return self._error(503, "Loading model", "unavailable_error")
                if standin.delay:
                    standin.released.wait(standin.delay)
                label = keyword_label(value or "")
                self._send(200, json.dumps({
                    "content": " " + label,
                    "model": standin.model_alias,
                    "stop": True,
                    "stop_type": "word",
                    "stopping_word": "\n",
                    "tokens_predicted": 2,
                    "tokens_evaluated": len(body["prompt"]) // 4,
                    "truncated": False,
                    "generation_settings": {"n_predict": body["n_predict"],
                                            "temperature": body.get("temperature", 0.8)},
                    "timings": {"prompt_ms": 1.0, "predicted_ms": 1.0},
                }))

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/completion"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _problem(self, p):
        with self.lock:
            self.problems.append(p)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    def count(self, value):
        with self.lock:
            return sum(1 for v in self.values if v == value)


def check_request(body, content_type):
    """What llama-server's /completion needs from boing-server's requests; None when fine."""
    if not content_type.startswith("application/json"):
        return "Content-Type is not application/json"
    if not isinstance(body, dict):
        return "body is not an object"
    if not isinstance(body.get("prompt"), str) or not body["prompt"]:
        return "prompt must be a non-empty string"
    n = body.get("n_predict")
    if not isinstance(n, int) or isinstance(n, bool) or not 0 < n <= 256:
        return "n_predict must be a small positive integer"
    if body.get("stream") is not False:
        return "stream must be false (one JSON answer)"
    if not isinstance(body.get("temperature"), (int, float)) or body["temperature"] != 0:
        return "temperature must be 0 (deterministic verdicts)"
    g = body.get("grammar")
    if not isinstance(g, str) or not g.startswith("root ::="):
        return "grammar must be a GBNF root rule"
    if sorted(re.findall(r'"([a-z_]+)"', g)) != sorted(LABELS):
        return "grammar must allow exactly the labels"
    if not isinstance(body.get("stop"), list):
        return "stop must be a list"
    return None


def value_of(prompt):
    """The value quoted in boing-server's prompt ("Value: <JSON string>")."""
    m = re.search(r'\nValue: (".*")\nLabel:$', prompt, re.S)
    if not m:
        return None
    return json.loads(m.group(1))
