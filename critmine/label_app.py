"""`critmine label`: a local Starlette app serving one labelling page over a pairs file.

The browser only ever names pair ids; the server owns the pairs file and its label log. Texts travel as JSON and
the page renders them with textContent, so markup inside a document is shown, never run.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import webbrowser
from importlib.resources import files
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from critmine.labels import DECISIONS, LabelLog, log_path, next_index
from critmine.records import Pair

MAX_BODY = 64 * 1024  # a decision with a reason is a few hundred bytes
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")


class Rejected(Exception):
    """A request the page itself would never send: answered with `status` and the reason, nothing written."""

    def __init__(self, status: int, why: str):
        super().__init__(why)
        self.status, self.why = status, why


def create_app(pairs: list[Pair], pairs_file: str | Path, annotator: str, note: str = "",
               hosts: tuple[str, ...] | None = LOCAL_HOSTS) -> Starlette:
    """The labelling app. Writes need the page's own token (a page of another site cannot read it), a JSON body
    of bounded size, and a Host (and Origin, when sent) naming this server, which stops DNS rebinding.
    `hosts`: the names the server answers to (None: any, for a wildcard bind)."""
    log = LabelLog(log_path(pairs_file))
    by_id = {p.id: p for p in pairs}
    lock = threading.Lock()
    token = secrets.token_urlsafe(24)
    page = files("critmine").joinpath("static/label.html").read_text(encoding="utf-8").replace(
        "{{CRITMINE_TOKEN}}", token)

    def state() -> dict:
        decided = log.decisions(annotator)
        i = next_index(pairs, decided)
        pair = pairs[i] if i < len(pairs) else None
        return {"annotator": annotator, "note": note, "total": len(pairs), "done": len(decided), "index": i,
                "pair": {"id": pair.id, "a": pair.a, "b": pair.b} if pair else None}

    def check_host(request: Request) -> None:
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if hosts is not None and name not in hosts:
            raise Rejected(400, f"unexpected Host {host!r}")
        origin = request.headers.get("origin")
        if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
            raise Rejected(403, f"cross-origin request from {origin!r}")

    async def json_body(request: Request) -> dict:
        check_host(request)
        if not secrets.compare_digest(request.headers.get("x-critmine-token", ""), token):
            raise Rejected(403, "missing or wrong page token (reload the page)")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise Rejected(415, "the body must be application/json")
        size = 0
        chunks = []
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise Rejected(413, f"body over {MAX_BODY} bytes")
            chunks.append(chunk)
        try:
            body = json.loads(b"".join(chunks) or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise Rejected(400, "malformed JSON") from None
        if not isinstance(body, dict):
            raise Rejected(400, "the body must be a JSON object")
        return body

    def guarded(handler):
        async def endpoint(request: Request):
            try:
                return await handler(request)
            except Rejected as e:
                return JSONResponse({"error": e.why}, status_code=e.status)
        return endpoint

    async def index(request: Request) -> HTMLResponse:
        check_host(request)
        return HTMLResponse(page, headers={"Content-Security-Policy": "default-src 'self'; "
                                           "script-src 'unsafe-inline'; style-src 'unsafe-inline'",
                                           "Cache-Control": "no-store"})

    async def get_state(request: Request) -> JSONResponse:
        check_host(request)
        return JSONResponse(state())

    async def label(request: Request) -> JSONResponse:
        body = await json_body(request)
        pid, decision = str(body.get("pair_id", "")), body.get("label")
        if pid not in by_id or decision not in DECISIONS:
            return JSONResponse({"error": "unknown pair or label"}, status_code=400)
        with lock:
            log.label(annotator, pid, decision, str(body.get("reason", ""))[:2000])
            return JSONResponse(state())

    async def undo(request: Request) -> JSONResponse:
        await json_body(request)
        with lock:
            log.undo(annotator)
            return JSONResponse(state())

    return Starlette(routes=[Route("/", guarded(index)), Route("/api/state", guarded(get_state)),
                             Route("/api/label", guarded(label), methods=["POST"]),
                             Route("/api/undo", guarded(undo), methods=["POST"])])


def serve(pairs: list[Pair], pairs_file: str | Path, annotator: str, *, host: str, port: int, note: str,
          open_browser: bool) -> int:

    # A wildcard bind serves every name the machine has; the page token still guards every write.
    hosts = None if host in ("0.0.0.0", "::") else LOCAL_HOSTS if host in LOCAL_HOSTS else (*LOCAL_HOSTS, host)
    app = create_app(pairs, pairs_file, annotator, note, hosts=hosts)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning")
    server = uvicorn.Server(config)

    def announce() -> None:
        while not server.started:
            threading.Event().wait(0.05)
        bound = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://{host}:{bound}/"
        logging.getLogger(__name__).info("labelling %d pairs as %r at %s (labels: %s)", len(pairs), annotator, url,
                                         log_path(pairs_file))
        if open_browser:
            webbrowser.open(url)

    threading.Thread(target=announce, daemon=True).start()
    server.run()
    return 0
