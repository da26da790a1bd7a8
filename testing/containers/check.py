"""What scripts/e2e-containers.sh asserts about the running stacks.

Each subcommand polls until its condition holds or its deadline passes, then
prints one line: "ok: ..." (exit 0) or "FAIL: ..." (exit 1).

  gpus    every GPU of every instance has series in VictoriaMetrics with the
          cluster, instance and gpu labels, at the scrape interval
  nogap   every series of a selector has a sample at least every interval
          (x 1.5) across a time window, and the expected count
  count   the number of raw samples of a selector in a window (printed)
  alert   Alertmanager's /api/v2/alerts (JSON on stdin) holds an alert
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
import urllib.parse
import urllib.request

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def export(vm: str, match: str, start: float, end: float) -> list[dict]:
    """Raw samples: VictoriaMetrics' /api/v1/export, one JSON object per series."""
    query = urllib.parse.urlencode(
        {"match[]": match, "start": f"{start:.3f}", "end": f"{end:.3f}"}
    )
    with _NO_PROXY.open(f"{vm}/api/v1/export?{query}", timeout=10) as r:
        lines = r.read().decode().splitlines()
    series = [json.loads(line) for line in lines if line.strip()]
    for s in series:
        s["timestamps"] = sorted(t / 1000 for t in s["timestamps"])
    return series


def name(metric: dict) -> str:
    labels = ",".join(
        f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__"
    )
    return f"{metric.get('__name__', '')}{{{labels}}}"


def poll(deadline: float, probe) -> str:
    """probe() -> (done, message); retried every 2 s until the deadline."""
    message = "nothing checked"
    while True:
        try:
            done, message = probe()
        except OSError as e:
            done, message = False, f"VictoriaMetrics does not answer: {e}"
        if done:
            print(f"ok: {message}")
            sys.exit(0)
        if time.time() >= deadline:
            print(f"FAIL: {message}")
            sys.exit(1)
        time.sleep(2)


def cmd_gpus(a: argparse.Namespace) -> None:
    deadline = time.time() + a.within

    def probe():
        now = time.time()
        series = export(a.vm, a.match, now - 120, now)
        seen: dict[tuple[str, str], list[float]] = {}
        for s in series:
            m = s["metric"]
            if not all(m.get(k) for k in ("cluster", "instance", "gpu")):
                return False, f"{name(m)} lacks a cluster, instance or gpu label"
            seen[(m["instance"], m["gpu"])] = s["timestamps"]
        want = [(i, str(g)) for i in a.instances for g in range(a.gpus)]
        missing = [w for w in want if w not in seen]
        if missing:
            return (
                False,
                f"no series yet for (instance, gpu) {missing[:4]} ({len(missing)} of {len(want)})",
            )
        for key in want:
            ts = seen[key][-3:]
            if len(ts) < 3:
                return False, f"{key}: {len(seen[key])} samples so far, waiting for 3"
            gaps = [b - a_ for a_, b in itertools.pairwise(ts)]
            if any(abs(g - a.interval) > 1.0 for g in gaps):
                return False, f"{key}: samples {gaps} s apart, not {a.interval} s"
        return True, (
            f"{len(want)} GPUs ({len(a.instances)} instance(s) x {a.gpus}) in {a.match}, "
            f"labels cluster/instance/gpu, samples {a.interval} s apart"
        )

    poll(deadline, probe)


def cmd_nogap(a: argparse.Namespace) -> None:
    deadline = time.time() + a.within
    expected = int((a.end - a.start) / a.interval)

    def probe():
        series = export(a.vm, a.match, a.start, a.end)
        if len(series) < a.series:
            return False, f"{len(series)} series match {a.match}, expected {a.series}"
        worst = ("", 0.0, 0, 0.0)
        for s in series:
            ts = [a.start, *s["timestamps"], a.end]
            gap, after = max((b - x, x) for x, b in itertools.pairwise(ts))
            if gap > worst[1]:
                worst = (name(s["metric"]), gap, len(s["timestamps"]), after)
        if worst[1] > a.interval * 1.5:
            return False, (
                f"{worst[0]} has a {worst[1]:.0f} s gap from {worst[3] - a.start:.0f} s into "
                f"the {a.end - a.start:.0f} s window ({worst[2]} samples, {expected} expected)"
            )
        counts = sorted(len(s["timestamps"]) for s in series)
        if counts[0] < expected - 1:
            return False, f"only {counts[0]} samples in a series, {expected} expected"
        return True, (
            f"{len(series)} series of {a.match}: no gap over {a.interval * 1.5:.1f} s in "
            f"{a.end - a.start:.0f} s, {counts[0]}-{counts[-1]} samples each ({expected} expected)"
        )

    poll(deadline, probe)


def cmd_count(a: argparse.Namespace) -> None:
    series = export(a.vm, a.match, a.start, a.end)
    print(sum(len(s["timestamps"]) for s in series))


def cmd_alert(a: argparse.Namespace) -> None:
    try:
        alerts = json.load(sys.stdin)
    except ValueError:
        sys.exit(1)
    want = dict(kv.split("=", 1) for kv in a.label)
    for alert in alerts:
        labels = alert.get("labels", {})
        if labels.get("alertname") == a.name and all(
            labels.get(k) == v for k, v in want.items()
        ):
            print(
                f"ok: Alertmanager holds {a.name} {labels} ({alert['status']['state']})"
            )
            sys.exit(0)
    sys.exit(1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gpus")
    g.add_argument("--vm", required=True)
    g.add_argument("--match", required=True)
    g.add_argument("--instances", nargs="+", required=True)
    g.add_argument("--gpus", type=int, required=True)
    g.add_argument("--interval", type=float, default=5.0)
    g.add_argument("--within", type=float, required=True)
    g.set_defaults(func=cmd_gpus)
    n = sub.add_parser("nogap")
    for q in (n, sub.add_parser("count")):
        q.add_argument("--vm", required=True)
        q.add_argument("--match", required=True)
        q.add_argument("--start", type=float, required=True)
        q.add_argument("--end", type=float, required=True)
    n.add_argument("--interval", type=float, default=5.0)
    n.add_argument("--series", type=int, default=1)
    n.add_argument("--within", type=float, required=True)
    n.set_defaults(func=cmd_nogap)
    sub.choices["count"].set_defaults(func=cmd_count)
    al = sub.add_parser("alert")
    al.add_argument("--name", required=True)
    al.add_argument("--label", action="append", default=[])
    al.set_defaults(func=cmd_alert)
    a = p.parse_args()
    a.func(a)


if __name__ == "__main__":
    main()
