"""Benchmark: judging throughput against a remote server with latency, default concurrency vs one at a time.

A stand-in for a vLLM server across a network: an OpenAI-compatible endpoint in this process that answers every
chat request after a fixed latency (default 200 ms) with one letter and its top_logprobs, handling requests in
parallel as vLLM's continuous batching does. The same pairs × criteria are judged twice through the same code a
`judge --base-url` run uses: with the endpoint's concurrency left at its default for a URL, and with
--concurrency 1 (what every remote run did before the default existed). Prints verdict requests/s of each and the
ratio.

    python eval/benchmarks/bench_remote.py [--latency 0.2] [--pairs 24] [--criteria 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from critmine.agents.worker import Worker
from critmine.config import EndpointConfig
from critmine.endpoints import resolve
from critmine.io import write_json_atomic
from critmine.llm import LLMClient, Usage
from critmine.records import Criterion, Pair


def latency_server(latency: float) -> ThreadingHTTPServer:
    """A threaded OpenAI-compatible chat endpoint that sleeps `latency` seconds, then answers "A" with logprobs."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(latency)
            top = [{"token": t, "logprob": math.log(p), "bytes": None} for t, p in (("A", 0.6), ("B", 0.35))]
            answer = {"id": "x", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
                      "choices": [{"index": 0, "finish_reason": "stop",
                                   "message": {"role": "assistant", "content": "A"},
                                   "logprobs": {"content": [{"token": "A", "logprob": math.log(0.6), "bytes": None,
                                                             "top_logprobs": top}]}}],
                      "usage": {"prompt_tokens": 100, "completion_tokens": 1, "total_tokens": 101}}
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


async def judge_rate(base_url: str, concurrency: int | None, pairs: list[Pair], criteria: list[Criterion]) -> dict:
    with contextlib.ExitStack() as stack:
        endpoint = resolve(EndpointConfig(base_url=base_url, kind="openai", model="m", concurrency=concurrency),
                           stack, {})
    client = LLMClient(endpoint, usage=Usage())
    try:
        t0 = time.monotonic()
        js = await Worker(client).judge_all(pairs, criteria)
        wall = time.monotonic() - t0
    finally:
        await client.aclose()
    requests = sum(j.order != "both" for j in js)
    return {"concurrency": endpoint.concurrency, "requests": requests, "wall_s": round(wall, 2),
            "requests_per_s": round(requests / wall, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=0.2, help="seconds per request")
    ap.add_argument("--pairs", type=int, default=24)
    ap.add_argument("--criteria", type=int, default=3)
    ap.add_argument("--out", help="write the figures as JSON")
    args = ap.parse_args()
    pairs = [Pair(id=f"p{i}", a=f"text a {i}", b=f"text b {i}") for i in range(args.pairs)]
    criteria = [Criterion(name=f"c{i}", description=f"Prefer the text that is better in respect {i}.")
                for i in range(args.criteria)]
    server = latency_server(args.latency)
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        default = asyncio.run(judge_rate(url, None, pairs, criteria))
        one = asyncio.run(judge_rate(url, 1, pairs, criteria))
    finally:
        server.shutdown()
    ratio = default["requests_per_s"] / one["requests_per_s"]
    print(f"remote server with {args.latency * 1000:.0f} ms latency, {args.pairs} pairs x {args.criteria} criteria "
          f"x 2 orders")
    for name, r in (("default concurrency", default), ("concurrency 1", one)):
        print(f"  {name:<22}{r['concurrency']:>4} in flight  {r['requests']:>5} requests  {r['wall_s']:>7.2f} s  "
              f"{r['requests_per_s']:>7.2f} requests/s")
    print(f"  ratio: {ratio:.1f}x")
    if args.out:
        write_json_atomic(args.out, {"latency_s": args.latency, "default": default, "one": one, "ratio": ratio})


if __name__ == "__main__":
    main()
