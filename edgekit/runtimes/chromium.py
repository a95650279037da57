"""TF.js graph models run in a real browser: a page in headless Chromium, served on 127.0.0.1.

The page loads @tensorflow/tfjs's own browser build (tf.min.js from node_modules) and the model
folder over HTTP exactly as a web app would (tf.loadGraphModel("model/model.json")), then asks
this process for work: it long-polls /next for a request, runs it with the same JS as the Node
runner (tfjs_runner.js) and posts the answer to /result. So `run` and `bench` speak to a page,
and the latency is timed inside the page (performance.now()). Chromium is Debian's package
(scripts/apt-web.txt), started with its own throwaway profile, no GPU (the backend is TF.js's
`wasm`, or EDGEKIT_TFJS_BACKEND=cpu/webgl), no network beyond 127.0.0.1.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .. import deps
from ..locate import chromium_binary, chromium_version, node_modules  # noqa: F401 - tests use them here
from .tfjs import DEFAULT_BACKEND, RUNNER_JS, JsRunner

ANSWER_TIMEOUT_S = 300.0
MIME = {".js": "text/javascript", ".mjs": "text/javascript", ".json": "application/json", ".wasm": "application/wasm"}
# A page whose script fails before it answers would leave the runner waiting: report it instead.
REPORT_ERRORS = """<script>
const edgekitReport = (e) => fetch("/result", {method: "POST", body: JSON.stringify({error: String(e)})});
window.addEventListener("error", (ev) => edgekitReport(ev.message || ev.error));
window.addEventListener("unhandledrejection", (ev) => edgekitReport(ev.reason && ev.reason.message || ev.reason));
</script>"""
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                  "--disable-extensions", "--disable-sync", "--no-first-run", "--mute-audio",
                  "--disable-component-update", "--disable-default-apps"]

PAGE = """<!doctype html><meta charset="utf-8"><title>edgekit TF.js runner</title>__REPORT_ERRORS__
<script src="/tfjs/tf.min.js"></script><script src="/tfjs-wasm/tf-backend-wasm.min.js"></script>
<script src="/runner.js"></script>
<script>
// tf.loadGraphModel starts every shard's fetch at once and reads no body until all have answered;
// over HTTP/1.1 the browser opens 6 connections per host, so a model of more than 6 large shards
// deadlocks (measured: MiniLM's 22 shards stopped at 6). Reading each body as it arrives avoids it.
const edgekitReadWhole = async (url, init) => {
  const r = await fetch(url, init);
  return new Response(await r.arrayBuffer(), {status: r.status, statusText: r.statusText, headers: r.headers});
};
(async () => {
  const post = (path, obj) => fetch(path, {method: "POST", body: JSON.stringify(obj)});
  let runner;
  try {
    const backend = "__BACKEND__";
    if (backend === "wasm") tf.wasm.setWasmPaths("/tfjs-wasm/");
    await tf.setBackend(backend);
    await tf.ready();
    const model = await tf.loadGraphModel("/model/model.json", {fetchFunc: edgekitReadWhole});
    runner = edgekitMakeRunner(tf, model);
    await post("/ready", {ready: true, backend: tf.getBackend(), tfjs: tf.version.tfjs,
                          userAgent: navigator.userAgent, outputs: runner.outNames});
  } catch (e) { await post("/ready", {error: String(e && e.message ? e.message : e)}); return; }
  for (;;) {
    const r = await fetch("/next");
    if (r.status === 204) continue;   // no work yet: poll again
    if (r.status !== 200) return;     // the runner closed
    let answer;
    try { answer = await runner.handle(await r.json()); }
    catch (e) { answer = {error: String(e && e.message ? e.message : e)}; }
    await post("/result", answer);
  }
})();
</script>"""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, model_dir: Path, backend: str, page: str = PAGE):
        self.model_dir, self.backend, self.page = model_dir.resolve(), backend, page
        self.jobs: queue.Queue = queue.Queue()
        self.answers: queue.Queue = queue.Queue()
        self.closing = False
        nm = node_modules() / "@tensorflow"
        self.static = {"/runner.js": RUNNER_JS, "/tfjs/tf.min.js": nm / "tfjs/dist/tf.min.js"}
        wasm = nm / "tfjs-backend-wasm/dist"
        self.static.update({f"/tfjs-wasm/{p.name}": p for p in wasm.glob("*") if p.suffix in (".js", ".wasm")})
        self.page = self.page.replace("__REPORT_ERRORS__", REPORT_ERRORS)
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # Keep-alive: with HTTP/1.0 (one connection per response) headless Chromium stalled after its
    # first 6 parallel weight-shard downloads of a 22-shard model and never asked for the 7th.
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet: the step log is not a web server log
        pass

    def _send(self, code: int, body: bytes = b"", ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 (http.server's name)
        s, path = self.server, self.path.split("?")[0]
        if path == "/":
            return self._send(200, s.page.replace("__BACKEND__", s.backend).encode(), "text/html")
        if path == "/next":
            if s.closing:
                return self._send(410)
            try:
                job = s.jobs.get(timeout=10)
            except queue.Empty:
                return self._send(204)
            return self._send(200, json.dumps(job).encode())
        if path in s.static:
            return self._send(200, s.static[path].read_bytes(), MIME.get(s.static[path].suffix, "application/octet-stream"))
        if path.startswith("/model/"):
            f = (s.model_dir / path[len("/model/"):]).resolve()
            if s.model_dir in f.parents and f.is_file():  # nothing outside the model folder is served
                return self._send(200, f.read_bytes(), MIME.get(f.suffix, "application/octet-stream"))
        return self._send(404)

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path in ("/ready", "/result"):
            self.server.answers.put(json.loads(body))
            return self._send(200)
        return self._send(404)


def _launch(url: str, profile_dir: str, log) -> subprocess.Popen:
    return subprocess.Popen([chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", url],
                            stdout=log, stderr=subprocess.STDOUT)


def run_page(folder: Path, module_js: str, timeout_s: float = ANSWER_TIMEOUT_S) -> dict:
    """Serve `folder` at /model/ and open a page that loads tf.min.js and runs `module_js` as an ES
    module; the module posts one JSON object to /result, which is returned. For checking what a web
    app does with an edgekit package (tests, `package --for web`), in the real browser."""
    deps.require("chromium", "running a page in headless Chromium")
    page = (f'<!doctype html><meta charset="utf-8">{REPORT_ERRORS}<script src="/tfjs/tf.min.js"></script>'
            f'<script type="module">{module_js}</script>')
    server = _Server(Path(folder), "cpu", page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    profile_dir = tempfile.mkdtemp(prefix="edgekit-chromium-")
    with open(Path(profile_dir) / "chromium.log", "w+") as log:
        proc = _launch(f"http://127.0.0.1:{server.server_address[1]}/", profile_dir, log)
        try:
            return server.answers.get(timeout=timeout_s)
        except queue.Empty:
            log.seek(0)
            raise RuntimeError(f"the page posted no result within {timeout_s:.0f} s: {log.read()[-1500:]}") from None
        finally:
            proc.kill()
            proc.wait()
            server.shutdown()
            server.server_close()
            shutil.rmtree(profile_dir, ignore_errors=True)


class ChromiumRunner(JsRunner):
    runtime = "tfjs-chromium"
    toolchain = "chromium"

    def __init__(self, path: Path, threads: int | None = None):
        super().__init__(path, threads)
        deps.require("chromium", "running TF.js models in a browser page")
        deps.require("node-tfjs", "the TF.js browser build (node_modules/@tensorflow/tfjs)")
        if not (self.path / "model.json").is_file():
            raise FileNotFoundError(f"{self.path}: no model.json (not a TF.js graph model folder)")
        self.backend = os.environ.get("EDGEKIT_TFJS_BACKEND", DEFAULT_BACKEND)
        self.server = _Server(self.path, self.backend)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.profile_dir = tempfile.mkdtemp(prefix="edgekit-chromium-")
        url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.log = open(Path(self.profile_dir) / "chromium.log", "w+")
        self.proc = _launch(url, self.profile_dir, self.log)
        self.ready = self._answer("loading the model in the page")
        self.user_agent = self.ready.get("userAgent")

    def _answer(self, what: str) -> dict:
        try:
            answer = self.server.answers.get(timeout=ANSWER_TIMEOUT_S)
        except queue.Empty:
            self.log.seek(0)
            tail = self.log.read()[-1500:]
            raise RuntimeError(f"Chromium gave no answer while {what} within {ANSWER_TIMEOUT_S:.0f} s "
                               f"(exit code {self.proc.poll()}): {tail.strip()}") from None
        if "error" in answer:
            raise RuntimeError(f"TF.js in Chromium, {what}: {answer['error']}")
        return answer

    def _request(self, req: dict) -> dict:
        self.server.jobs.put(req)
        return self._answer("running the model")

    def close(self) -> None:
        server = getattr(self, "server", None)
        if server:
            server.closing = True
        proc = getattr(self, "proc", None)
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if server:
            server.shutdown()
            server.server_close()
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(getattr(self, "profile_dir", ""), ignore_errors=True)

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 — interpreter shutdown
            pass


RUNNER = ChromiumRunner
