#!/usr/bin/env python3
"""Small helpers for bench/run.sh (standard library only; talks to 127.0.0.1 only).

    helpers.py indexed BASE_URL                 -> prints /health's indexed_documents
    helpers.py smoke BASE_URL KEY LUA_FILE      -> checks GET /tools and every question of the
                                                   Lua script once; prints per-question timing
    helpers.py metrics BASE_URL OUT_JSON        -> saves the request-duration histogram
                                                   buckets of /metrics (cumulative counts)
    helpers.py metrics-delta BEFORE AFTER ROUTE -> prints the server-side latency distribution
                                                   of ROUTE between two snapshots
    helpers.py wrk-summary WRK_OUTPUT           -> prints "rps p50_ms p90_ms p99_ms non2xx errors"
"""

import json
import re
import sys
import time
import urllib.request


def get(url, headers=None, body=None, method=None):
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.read()


def indexed(base):
    _, body = get(base + "/health")
    print(json.loads(body)["indexed_documents"])


def lua_questions(lua_file):
    text = open(lua_file, encoding="utf-8").read()
    block = text.split("local questions = {", 1)[1].split("}", 1)[0]
    return re.findall(r'"((?:[^"\\]|\\.)*)"', block)


def smoke(base, key, lua_file):
    auth = {"Authorization": "Bearer " + key}
    status, body = get(base + "/rest/v1/ai-agent/api/tools", auth)
    tools = json.loads(body)
    assert status == 200 and tools["count"] >= 1, (status, body[:200])
    print(f"GET /tools: 200, {tools['count']} tools, {len(body)} bytes")
    url = base + "/rest/v1/ai-agent/api/tools/search_knowledge_base/execute"
    headers = dict(auth, **{"Content-Type": "application/json"})
    failures = 0
    for q in lua_questions(lua_file):
        started = time.perf_counter()
        status, body = get(url, headers, json.dumps({"query": q}).encode(), "POST")
        elapsed = (time.perf_counter() - started) * 1000
        answer = json.loads(body)
        titles = re.findall(r"^## (.*)$", answer.get("result", ""), re.M)
        kinds = re.findall(r"^\*(\w+)\* ·", answer.get("result", ""), re.M)
        ok = status == 200 and answer.get("success") is True and titles
        failures += 0 if ok else 1
        top = f"{titles[0][:60]!r} ({kinds[0] if kinds else '?'})" if titles else "-"
        print(f"  {'ok ' if ok else 'BAD'} {elapsed:6.1f} ms {len(body):5d} B  {q!r:55} -> {top}")
    if failures:
        sys.exit(f"{failures} search question(s) did not return results")


def metrics(base, out):
    _, body = get(base + "/metrics")
    buckets = {}
    pattern = re.compile(
        r'^http_request_duration_seconds_bucket\{(?P<labels>.*)\} (?P<value>\S+)$')
    for line in body.decode().splitlines():
        m = pattern.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group("labels")))
        buckets.setdefault(labels.get("route", "?"), {})[labels["le"]] = float(m.group("value"))
    json.dump(buckets, open(out, "w"))


def metrics_delta(before_file, after_file, route):
    before = json.load(open(before_file)).get(route, {})
    after = json.load(open(after_file)).get(route, {})
    if not after:
        print("  (no server-side histogram for this route in /metrics)")
        return
    total = after.get("+Inf", 0) - before.get("+Inf", 0)
    if total <= 0:
        print("  (no requests recorded)")
        return
    parts = []
    for le in sorted((k for k in after if k != "+Inf"), key=float):
        share = (after[le] - before.get(le, 0)) / total * 100
        if float(le) <= 0.05:
            parts.append(f"<={float(le) * 1000:g}ms {share:5.1f}%")
    print(f"  server-side handler time (/metrics, {int(total)} requests): " + ", ".join(parts))


def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk_summary(path):
    text = open(path, encoding="utf-8").read()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)
    pct = {p: to_ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", text, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors:(.*)$", text, re.M)
    print(rps, f"{pct['50']:.3f}", f"{pct['90']:.3f}", f"{pct['99']:.3f}",
          non2xx.group(1) if non2xx else "0",
          "'" + (errors.group(1).strip() if errors else "none") + "'")


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"indexed": indexed, "smoke": smoke, "metrics": metrics, "metrics-delta": metrics_delta,
     "wrk-summary": wrk_summary}[command](*args)
