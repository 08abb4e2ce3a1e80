"""Hostile-input benchmark: many malformed or hostile requests against both servers.

Starts a predictor and a transformer on free loopback ports around a model, then sends
``--requests`` requests to each (8 concurrent connections, seeded, bounded in count and
time): the classes of issue 8 (numbers outside float or 64-bit range, nesting at and past
the parser's limits, malformed binary headers and tensor sizes, non-object, non-UTF-8 and
empty bodies, CloudEvents without a body, unknown models and versions, odd content types,
oversized bodies and ids) and random mutations of valid requests. Prints the totals by
status class per server (target: 0 5xx), the answers the servers logged twice (target: 0)
and whether both still serve a valid request afterwards. Exits 1 on any 5xx.

    python benchmarks/hostile_bench.py --model_dir path/to/model [--requests 6000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import struct
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from serving_bench import server_env

from creditrisk.contract import FEATURE_NAMES, FEATURES
from creditrisk.serve.local import predictor_process, transformer_process
from creditrisk.settings import get_settings

MODEL = get_settings().model_name
CE = {"ce-specversion": "1.0", "ce-source": "bench", "ce-type": "t", "ce-id": "1"}


def good_record(rng: random.Random) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    for f in FEATURES:
        if f.codes is not None:
            rec[f.name] = rng.choice(f.codes)
        elif f.integral:
            rec[f.name] = rng.randint(int(f.minimum or 0), int(f.maximum or 100))
        else:
            rec[f.name] = round(rng.uniform(f.minimum or 0, min(f.maximum or 1e6, 1e6)), 2)
    return rec


def hostile_value(rng: random.Random) -> bytes:
    return rng.choice([
        b"1" + b"0" * rng.randint(19, 500), b"-1" + b"0" * rng.randint(19, 40), b"1e400",
        b"-1e999", b"NaN", b"Infinity", b"null", b"true", b'"x"', b'"' + b"y" * 5000 + b'"',
        b"[" * (d := rng.randint(1, 3000)) + b"]" * d, b"{}", b"[]", b"1.5", b"-3",
        b"18446744073709551616", b"9223372036854775808", b'"\\ud800"',
    ])


def request(rng: random.Random, server: str) -> tuple[str, bytes, dict[str, str]]:
    """One hostile (path, body, headers)."""
    v1 = f"/v1/models/{MODEL}:predict"
    v2 = f"/v2/models/{MODEL}/infer"
    rec = good_record(rng)
    names = list(FEATURE_NAMES)
    kind = rng.randrange(16)
    if kind == 0:  # a record field replaced by a hostile literal
        field = rng.choice(names).encode()
        body = json.dumps({"instances": [rec]}).encode().replace(
            b'"' + field + b'": ', b'"' + field + b'": ' + hostile_value(rng) + b", \"_x\": ", 1)
        return v1, body, {"content-type": "application/json"}
    if kind == 1:  # a v2 tensor datum replaced by a hostile literal
        inputs = [{"name": n, "shape": [1], "datatype": rng.choice(["FP64", "INT64", "FP32"]),
                   "data": [rec[n]]} for n in names]
        body = json.dumps({"id": "b", "inputs": inputs}).encode()
        at = body.find(b'"data": [') + 9
        return v2, body[:at] + hostile_value(rng) + b", " + body[at:], {}
    if kind == 2:  # nesting at and past the parser's limits
        d = rng.choice([512, 1000, 1023, 1024, 1025, 5000])
        body = rng.choice([b'{"instances": ' + b"[" * d + b"]" * d + b"}",
                           b"[" * d + b"]" * d, b'{"inputs": [{"name": "AGE", "data": ' +
                           b"[" * d + b"]" * d + b"}]}", b'{"parameters": {"a": ' +
                           b"{\"a\": " * d + b"1" + b"}" * d + b'}, "inputs": []}'])
        return rng.choice([v1, v2]), body, {}
    if kind == 3:  # malformed Inference-Header-Content-Length
        body = json.dumps({"inputs": []}).encode()
        value = rng.choice(["", "abc", "-1", "0", "1e3", "+5", "99999999999", "4.5",
                            str(len(body) + rng.randint(1, 100)), "0x10"])
        return v2, body, {"inference-header-content-length": value,
                          "content-type": rng.choice(["application/octet-stream", ""])}
    if kind == 4:  # binary tensors whose sizes disagree with shape and datatype
        n = rng.randint(1, 3)
        x = struct.pack(f"<{23 * n}d", *([1.0] * 23 * n))
        if server == "predictor":
            inputs = [{"name": "input-0", "shape": [n, 23], "datatype": "FP64",
                       "parameters": {"binary_data_size": rng.choice(
                           [len(x), len(x) - 8, len(x) + 8, -1, "x", None, 2**70])}}]
        else:
            inputs = [{"name": f, "shape": [n], "datatype": rng.choice(["FP64", "INT32"]),
                       "parameters": {"binary_data_size": rng.choice([8 * n, 4 * n, 0])}}
                      for f in names]
        head = json.dumps({"inputs": inputs, "parameters": {"binary_data_output": True}}).encode()
        tensor = x[: rng.randint(0, len(x) + 16)] + b"\0" * rng.randint(0, 16)
        return v2, head + tensor, {"inference-header-content-length": str(len(head)),
                                   "content-type": "application/octet-stream"}
    if kind == 5:  # non-object bodies
        return rng.choice([v1, v2]), rng.choice([b"null", b"[]", b"[1,2]", b'"x"', b"5",
                                                 b"true"]), rng.choice([
            {}, {"inference-header-content-length": "4"}])
    if kind == 6:  # not UTF-8, or not JSON
        return rng.choice([v1, v2]), rng.choice([
            b'{"instances": ["\xff\xfe"]}', bytes(rng.randrange(256) for _ in range(64)),
            b'{"instances": [', b"{'a': 1}"]), {}
    if kind == 7:  # CloudEvents without a body, or with a non-object body
        return rng.choice([v1, v2]), rng.choice([b"", b"null", b"[]"]), dict(CE)
    if kind == 8:  # unknown models, versions, routes
        path = rng.choice([f"/v2/models/{MODEL}/versions/{rng.randint(0, 9)}/infer",
                           "/v2/models/nope/infer", "/v1/models/nope:predict",
                           f"/v2/models/{'x' * 3000}/infer", "/v1/models/nope:explain"])
        return path, json.dumps({"instances": [rec]}).encode(), {}
    if kind == 9:  # content types
        ctype = rng.choice(["text/plain", "application/xml", "multipart/form-data; b=x",
                            "application/x-www-form-urlencoded", "*/*", "application/json;",
                            "APPLICATION/JSON; charset=latin-1", "application/json;charset=", ""])
        return rng.choice([v1, v2]), json.dumps({"instances": [rec]}).encode(), {
            "content-type": ctype}
    if kind == 10:  # client-chosen strings past their bounds
        return rng.choice([
            (v1, json.dumps({"instances": [rec]}).encode(), {"x-request-id": "r" * 5000}),
            (v2, json.dumps({"id": "i" * rng.randint(129, 10_000), "inputs": []}).encode(), {}),
            (v2, json.dumps({"parameters": {"k" * 300: 1}, "inputs": []}).encode(), {}),
            (v2, json.dumps({"parameters": {str(i): i for i in range(100)},
                             "inputs": []}).encode(), {}),
        ])
    if kind == 11:  # an oversized body (declared)
        return v1, b" " * (get_settings().max_request_bytes + 1), {}
    if kind == 12:  # random mutations of a record: types, ranges, missing, extra
        for _ in range(rng.randint(1, 5)):
            f = rng.choice(names)
            rec[f] = rng.choice([None, "7", True, -1, 10**9, 1.5, [], {}, float(2**70)])
        if rng.random() < 0.3:
            rec.pop(rng.choice(names))
        return v1, json.dumps({"instances": [rec] * rng.randint(0, 3)}).encode(), {}
    if kind == 13:  # v2 layouts
        body: Any = rng.choice([
            {"inputs": "x"}, {"inputs": [{"name": "AGE"}]}, {"inputs": [1, 2]},
            {"inputs": [{"name": "AGE", "shape": [-1], "datatype": "FP64", "data": [1]}]},
            {"inputs": [{"name": "AGE", "shape": [2**63, 2**63], "datatype": "FP64",
                         "data": [1]}]},
            {"inputs": [{"name": "AGE", "shape": "x", "datatype": "FP16", "data": [1]}]},
            {"id": 5, "inputs": []}, {"outputs": "x", "inputs": []},
        ])
        return v2, json.dumps(body).encode(), {}
    if kind == 14:  # empty bodies with various headers
        return rng.choice([v1, v2]), b"", rng.choice([{}, {"content-type": "application/json"},
                                                      {"inference-header-content-length": "0"}])
    # a random byte mutation of a valid request
    body = bytearray(json.dumps({"instances": [rec]} if rng.random() < 0.5 else {
        "inputs": [{"name": n, "shape": [1], "datatype": "FP64", "data": [rec[n]]}
                   for n in names]}).encode())
    for _ in range(rng.randint(1, 4)):
        body[rng.randrange(len(body))] = rng.randrange(256)
    return rng.choice([v1, v2]), bytes(body), {}


async def hammer(url: str, server: str, n: int, seed: int, conns: int, deadline: float
                 ) -> tuple[Counter[str], list[str]]:
    rng = random.Random(seed)
    work = [request(rng, server) for _ in range(n)]
    classes: Counter[str] = Counter()
    samples: list[str] = []
    async with httpx.AsyncClient(base_url=url, timeout=30,
                                 limits=httpx.Limits(max_connections=conns)) as client:
        async def worker(items: list[tuple[str, bytes, dict[str, str]]]) -> None:
            for path, body, headers in items:
                if time.monotonic() > deadline:
                    return
                try:
                    r = await client.post(path, content=body, headers=headers)
                    cls = f"{r.status_code // 100}xx"
                    if r.status_code >= 500 and len(samples) < 5:
                        samples.append(f"{path} {body[:120]!r} {headers} -> {r.status_code} "
                                       f"{r.text[:200]}")
                except httpx.HTTPError as exc:
                    cls = f"connection error ({type(exc).__name__})"
                classes[cls] += 1

        await asyncio.gather(*(worker(work[i::conns]) for i in range(conns)))
    return classes, samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model_dir", required=True,
                    help="saved model directory, or a registry URI (models:/name@champion)")
    ap.add_argument("--requests", type=int, default=6000, help="per server (default 6000)")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--max_seconds", type=int, default=600, help="bound on each server's run")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="hostile-bench-"))
    env = server_env(args.model_dir, work)
    predictor = predictor_process(args.model_dir, workdir=work, env=env).start(timeout_s=120)
    transformer = None
    failed = False
    try:
        transformer = transformer_process(predictor, workdir=work, env=env,
                                          prediction_log=work / "prediction-log").start(
            timeout_s=120)
        rng = random.Random(0)
        rec = good_record(rng)
        good = {"transformer": {"instances": [rec]},
                "predictor": {"instances": [[rec[n] for n in FEATURE_NAMES]]}}
        total: Counter[str] = Counter()
        print(f"{'server':12} {'requests':>8} {'2xx':>6} {'4xx':>6} {'5xx':>5} {'other':>6} "
              f"{'seconds':>8}  still serving")
        for server, proc in (("transformer", transformer), ("predictor", predictor)):
            started = time.monotonic()
            classes, samples = asyncio.run(hammer(
                proc.url, server, args.requests, seed=hash(server) & 0xFFFF,
                conns=args.connections, deadline=started + args.max_seconds))
            took = time.monotonic() - started
            alive = httpx.post(f"{proc.url}/v1/models/{MODEL}:predict", json=good[server],
                               timeout=30).status_code == 200
            n = sum(classes.values())
            other = n - classes["2xx"] - classes["4xx"] - classes["5xx"]
            print(f"{server:12} {n:8d} {classes['2xx']:6d} {classes['4xx']:6d} "
                  f"{classes['5xx']:5d} {other:6d} {took:8.1f}  {'yes' if alive else 'NO'}")
            for s in samples:
                print("   5xx:", s)
            total.update(classes)
            failed |= bool(classes["5xx"]) or not alive or other > 0
    finally:
        if transformer is not None:
            transformer.stop()
        predictor.stop()
    twice = sum(p.log_path.read_text(errors="replace").count("Unexpected ASGI message")
                for p in (predictor, transformer) if p is not None)
    n = sum(total.values())
    print(f"total: {n} hostile requests; by class: {dict(sorted(total.items()))}; "
          f"answers attempted twice (server logs): {twice}")
    print(f"1-min load average at the end: {os.getloadavg()[0]:.2f}; logs in {work}")
    print("target: >= 10,000 requests, 0 5xx, 0 double answers, both servers still serving")
    sys.exit(1 if failed or twice else 0)


if __name__ == "__main__":
    main()
