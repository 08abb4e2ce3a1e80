"""Shadow scoring's cost: the serving benchmark with shadow on and off, in one run.

Starts one champion predictor, one challenger predictor and two transformers in front of
the champion (one with ``--challenger_host``, one without), all on loopback, then
measures them in alternating rounds (off, on, off, on, ...) so that both see the same
machine: single-record v1 requests from ``wrk`` on 8 connections (requests/s, p50, p99)
and the CPU time of every server process per request (transformer + champion predictor
+ challenger). Reports the median of the rounds and the targets (p99 on <= 1.15 x p99
off; requests/s within 10 %), and how many batches the challenger scored (``ok``) or
missed (drops by outcome).

    python benchmarks/shadow_bench.py                          # two synthetic models
    python benchmarks/shadow_bench.py --model_dir A --challenger_dir B --seconds 15
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serving_bench import (
    MODEL,
    TICK,
    Chain,
    client_records,
    load_wrk,
    server_env,
)

from creditrisk.serve.local import (
    challenger_process,
    predictor_process,
    transformer_process,
)


def shadow_counts(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return {m.group(1): float(m.group(2)) for m in re.finditer(
        r'^creditrisk_shadow_requests_total\{outcome="([a-z_]+)"\} (\S+)$', text, re.M)}


def round_of(chain: Chain, body: Path, seconds: int, work: Path) -> dict[str, float]:
    url = f"{chain.url}/v1/models/{MODEL}:predict"
    before = chain.cpu_ticks()
    res = load_wrk(url, body, 8, seconds, work)
    after = chain.cpu_ticks()
    cpu = {f"cpu_{r}": (after[r] - before[r]) / TICK * 1e6 / max(res.requests, 1)
           for r in before}
    return {"rps": res.rps, "p50_ms": res.p50_ms, "p99_ms": res.p99_ms,
            "non_2xx": res.non_2xx, "cpu_us_per_request": sum(cpu.values()), **cpu}


def models(args: argparse.Namespace, work: Path) -> tuple[str, str]:
    if args.model_dir and args.challenger_dir:
        return args.model_dir, args.challenger_dir
    from tests.helpers import save_synthetic_model

    return (str(save_synthetic_model(work / "champion", seed=0)),
            str(save_synthetic_model(work / "challenger", seed=1, trees=25)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model_dir", help="the champion (default: a synthetic model)")
    ap.add_argument("--challenger_dir", help="the challenger (default: a synthetic model)")
    ap.add_argument("--seconds", type=int, default=10, help="length of one round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each mode")
    args = ap.parse_args()

    from creditrisk.contract import FEATURE_NAMES
    from tests.synthetic import synthetic_frame

    work = Path(tempfile.mkdtemp(prefix="shadow-bench-"))
    champion_dir, challenger_dir = models(args, work)
    env = server_env(champion_dir, work)
    body = work / "one.json"
    body.write_text(json.dumps({"instances": client_records(
        synthetic_frame(1, seed=3, target=False).loc[:, list(FEATURE_NAMES)])}))

    predictor = predictor_process(champion_dir, workdir=work, env=env).start(timeout_s=120)
    challenger = challenger_process(challenger_dir, workdir=work, env=env).start(
        timeout_s=120)
    on = transformer_process(predictor, workdir=work, env=env, challenger=challenger,
                             prediction_log=work / "log-on").start(timeout_s=120)
    off = transformer_process(predictor, workdir=work, env=env,
                              prediction_log=work / "log-off").start(timeout_s=120)
    chains = {"off": Chain("off", {"transformer": off, "predictor": predictor}),
              "on": Chain("on", {"transformer": on, "predictor": predictor,
                                 "challenger": challenger})}
    rounds: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    try:
        for chain in chains.values():  # warm-up
            load_wrk(f"{chain.url}/v1/models/{MODEL}:predict", body, 8, 2, work)
        for _ in range(args.rounds):
            for mode, chain in chains.items():
                rounds[mode].append(round_of(chain, body, args.seconds, work))
        counts = shadow_counts(on.url)
    finally:
        for s in (on, off, challenger, predictor):
            s.stop()
    report(rounds, counts, work)


def report(rounds: dict[str, list[dict[str, float]]], counts: dict[str, float],
           work: Path) -> None:
    med: dict[str, dict[str, Any]] = {
        mode: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        for mode, rs in rounds.items()}
    print(f"\n{'shadow':6} {'rps':>8} {'p50 ms':>7} {'p99 ms':>7} {'non2xx':>6} "
          f"{'CPU us/req: all = transformer + predictor + challenger':>54}   "
          f"(median of {len(rounds['off'])} rounds)")
    for mode, m in med.items():
        print(f"{mode:6} {m['rps']:8.0f} {m['p50_ms']:7.2f} {m['p99_ms']:7.2f} "
              f"{m['non_2xx']:6.0f} {m['cpu_us_per_request']:22.0f} = "
              f"{m['cpu_transformer']:.0f} + {m['cpu_predictor']:.0f} + "
              f"{m.get('cpu_challenger', 0):.0f}")
    for mode, rs in rounds.items():
        print(f"  {mode} rounds: " + "; ".join(
            f"{r['rps']:.0f} rps p99 {r['p99_ms']:.2f} ms" for r in rs))
    p99 = med["on"]["p99_ms"] / med["off"]["p99_ms"]
    rps = med["on"]["rps"] / med["off"]["rps"]
    print(f"on/off: p99 x{p99:.2f} (target <= 1.15), requests/s x{rps:.2f} (target >= 0.90)")
    print(f"shadow outcomes: {json.dumps(counts)}")
    print(f"(logs in {work})")


if __name__ == "__main__":
    main()
