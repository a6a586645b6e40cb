"""Pair sampling, the label log, and the labelling page in a real headless Chromium."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from critmine.io import InputError, read_pairs
from critmine.label_app import create_app
from critmine.labels import LabelLog, export, log_path, stats
from critmine.records import Document, Pair
from critmine.sampling import sample_pairs

XSS_A = 'Before <script>window.__xss = "script"</script> after'
XSS_B = 'An image <img src="x" onerror="window.__xss = \'img\'"> here'


def docs(n: int, **meta):
    for i in range(n):
        yield Document(id=f"d{i}", text="word " * (10 + (i * 37) % 200), meta={"g": i % 3, **meta})


def test_sampled_pairs_are_length_matched_distinct_and_streamed():
    pairs = sample_pairs(docs(20_000), 40, seed=1, length_ratio=1.2)
    assert len(pairs) == 40
    used = [p.meta["a_id"] for p in pairs] + [p.meta["b_id"] for p in pairs]
    assert len(set(used)) == 80
    assert all(max(len(p.a), len(p.b)) <= 1.2 * min(len(p.a), len(p.b)) for p in pairs)
    assert all(p.a != p.b and p.better is None for p in pairs)
    grouped = sample_pairs(docs(5000), 20, seed=1, group_by="g")
    by_id = {d.id: d.meta["g"] for d in docs(5000)}
    assert all(by_id[p.meta["a_id"]] == by_id[p.meta["b_id"]] for p in grouped)


def test_identical_texts_never_pair_and_impossible_requests_fail_clearly():
    same = [Document(id=f"s{i}", text="the same text") for i in range(50)]
    with pytest.raises(InputError, match="only 0 length-matched pairs"):
        sample_pairs(iter(same), 1)


def _pairs_file(tmp_path: Path) -> Path:
    rows = [Pair(id="p1", a="First A text", b="First B text"), Pair(id="p2", a="def f(x):\n    return x\n", b="Plain"),
            Pair(id="p3", a=XSS_A, b=XSS_B), Pair(id="p4", a="Fourth A", b="Fourth B")]
    f = tmp_path / "pairs.jsonl"
    f.write_text("".join(r.model_dump_json() + "\n" for r in rows))
    return f


def test_label_log_undo_resume_export_and_agreement(tmp_path):
    f = _pairs_file(tmp_path)
    pairs, log = read_pairs(f), LabelLog(log_path(f))
    votes = {"ann": ["a", "b", "tie", "a"], "bob": ["a", "a", "tie", "b"], "cy": ["a", "b", "a", "b"]}
    for who, labels in votes.items():
        for p, lab in zip(pairs, labels, strict=True):
            log.label(who, p.id, lab)
    log.undo("cy")  # takes back cy's label of p4
    assert "p4" not in log.decisions("cy")
    merged = {p.id: p.better for p in export(pairs, log)}
    assert merged == {"p1": "a", "p2": "b", "p3": "a"}  # p4 split 1:1 → no label
    s = stats(pairs, log)
    ann_bob = next(a for a in s["agreement"] if a["annotators"] == ["ann", "bob"])
    assert ann_bob["n"] == 4 and ann_bob["percent"] == 0.5
    # ann = a b tie a, bob = a a tie b: po = 0.5, pe = (2/4·2/4 + 1/4·1/4 + 1/4·1/4) = 0.375 → κ = 0.2
    assert ann_bob["kappa"] == pytest.approx(0.2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def label_server(tmp_path):
    f = _pairs_file(tmp_path)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(read_pairs(f), f, "tester", note="Pick the better data."),
                                          host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f, f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(5)


CHROMIUM = Path("/usr/bin/chromium")


def test_labelling_page_in_chromium(label_server, tmp_path):
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():  # `make test` installs it where it can; never a silent skip
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (sudo apt-get install chromium) and rerun",
                    pytrace=False)

    pairs_file, url = label_server
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
        # CSP off in the test: the page must be safe by how it renders text, not only by its CSP header.
        page = browser.new_context(bypass_csp=True).new_page()
        response = page.goto(url)
        assert "default-src 'self'" in response.headers["content-security-policy"]
        shown = lambda pid: page.wait_for_selector(f"body[data-pair-id='{pid}']")  # noqa: E731
        shown("p1")
        assert page.text_content("#note") == "Pick the better data."
        page.keyboard.press("a")
        shown("p2")
        assert "code" in page.get_attribute("#text-a", "class")  # code is shown in monospace
        page.keyboard.press("b")
        shown("p3")
        page.keyboard.press("t")
        shown("p4")
        page.keyboard.press("u")  # undo the tie
        shown("p3")
        page.reload()
        shown("p3")  # resumed at the first unlabelled pair
        assert page.text_content("#count") == "2 / 4"
        # Untrusted markup is shown as characters and never runs.
        assert page.text_content("#text-a") == XSS_A and page.text_content("#text-b") == XSS_B
        page.wait_for_timeout(300)
        assert page.evaluate("window.__xss") is None
        assert page.locator("#text-a script, #text-b img").count() == 0
        page.screenshot(path=str(tmp_path / "label-page.png"), full_page=True)
        page.keyboard.press("?")
        assert page.is_visible("#help")
        browser.close()
    assert (tmp_path / "label-page.png").stat().st_size > 10_000
    out = tmp_path / "labelled.jsonl"
    subprocess.run([sys.executable, "-m", "critmine.cli", "label", str(pairs_file), "--export", str(out)], check=True,
                   capture_output=True)
    assert [(p["id"], p["better"]) for p in map(json.loads, out.read_text().splitlines())] == [("p1", "a"), ("p2", "b")]


def page_token(url: str) -> str:
    import re

    return re.search(r'name="critmine-token" content="([^"]+)"', httpx.get(url).text).group(1)


def test_killing_the_server_loses_no_label(tmp_path):
    f = _pairs_file(tmp_path)
    port = _free_port()
    cmd = [sys.executable, "-m", "critmine.cli", "label", str(f), "--port", str(port), "--annotator", "k"]

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/state", timeout=1)
                return proc
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError("label server did not start")

    proc = start()
    headers = {"X-Critmine-Token": page_token(f"http://127.0.0.1:{port}/")}
    for pid, lab in [("p1", "a"), ("p2", "b"), ("p3", "skip")]:
        r = httpx.post(f"http://127.0.0.1:{port}/api/label", json={"pair_id": pid, "label": lab, "reason": "r"},
                       headers=headers)
        assert r.status_code == 200
    assert httpx.post(f"http://127.0.0.1:{port}/api/label", json={"pair_id": "../etc/passwd", "label": "a"},
                      headers=headers).status_code == 400
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(5)
    proc = start()
    try:
        state = httpx.get(f"http://127.0.0.1:{port}/api/state").json()
        assert state["done"] == 3 and state["pair"]["id"] == "p4"
    finally:
        proc.terminate()
        proc.wait(5)


def test_only_the_page_itself_can_write_labels(label_server):
    pairs_file, url = label_server
    api = url + "api/label"
    token = page_token(url)
    ok = {"X-Critmine-Token": token}
    vote = {"pair_id": "p1", "label": "a"}
    # a page of another site: no token, a "simple" text/plain body, its own Origin
    assert httpx.post(api, content=json.dumps(vote), headers={"Content-Type": "text/plain"}).status_code == 403
    assert httpx.post(api, content=json.dumps(vote), headers={**ok, "Content-Type": "text/plain"}).status_code == 415
    assert httpx.post(api, json=vote, headers={**ok, "Origin": "http://evil.example"}).status_code == 403
    assert httpx.post(api, json=vote, headers={**ok, "Host": "evil.example"}).status_code == 400  # DNS rebinding
    assert httpx.get(url, headers={"Host": "evil.example"}).status_code == 400
    assert httpx.post(api, content=b"{not json", headers={**ok, "Content-Type": "application/json"}).status_code == 400
    huge = b'{"pair_id": "p1", "label": "a", "reason": "' + b"x" * 300_000 + b'"}'
    assert httpx.post(api, content=huge, headers={**ok, "Content-Type": "application/json"}).status_code == 413
    assert httpx.post(api, json=["a"], headers=ok).status_code == 400
    assert LabelLog(log_path(pairs_file)).events() == []  # none of that was written
    same_origin = url.rstrip("/")
    assert httpx.post(api, json=vote, headers={**ok, "Origin": same_origin}).status_code == 200
    assert [e["pair_id"] for e in LabelLog(log_path(pairs_file)).events()] == ["p1"]
