"""`critmine label`: a local Starlette app serving one labelling page over a pairs file.

The browser only ever names pair ids; the server owns the pairs file and its label log. Texts travel as JSON and
the page renders them with textContent, so markup inside a document is shown, never run.
"""

from __future__ import annotations

import threading
from importlib.resources import files
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from critmine.labels import DECISIONS, LabelLog, log_path, next_index
from critmine.records import Pair


def create_app(pairs: list[Pair], pairs_file: str | Path, annotator: str, note: str = "") -> Starlette:
    log = LabelLog(log_path(pairs_file))
    by_id = {p.id: p for p in pairs}
    lock = threading.Lock()
    page = files("critmine").joinpath("static/label.html").read_text(encoding="utf-8")

    def state() -> dict:
        decided = log.decisions(annotator)
        i = next_index(pairs, decided)
        pair = pairs[i] if i < len(pairs) else None
        return {"annotator": annotator, "note": note, "total": len(pairs), "done": len(decided), "index": i,
                "pair": {"id": pair.id, "a": pair.a, "b": pair.b} if pair else None}

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": "default-src 'self'; "
                                           "script-src 'unsafe-inline'; style-src 'unsafe-inline'"})

    async def get_state(request: Request) -> JSONResponse:
        return JSONResponse(state())

    async def label(request: Request) -> JSONResponse:
        body = await request.json()
        pid, decision = str(body.get("pair_id", "")), body.get("label")
        if pid not in by_id or decision not in DECISIONS:
            return JSONResponse({"error": "unknown pair or label"}, status_code=400)
        with lock:
            log.label(annotator, pid, decision, str(body.get("reason", ""))[:2000])
            return JSONResponse(state())

    async def undo(request: Request) -> JSONResponse:
        with lock:
            log.undo(annotator)
            return JSONResponse(state())

    return Starlette(routes=[Route("/", index), Route("/api/state", get_state),
                             Route("/api/label", label, methods=["POST"]), Route("/api/undo", undo, methods=["POST"])])


def serve(pairs: list[Pair], pairs_file: str | Path, annotator: str, *, host: str, port: int, note: str,
          open_browser: bool) -> int:
    import logging
    import webbrowser

    import uvicorn

    app = create_app(pairs, pairs_file, annotator, note)
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
