"""Queries compose/ha from inside its network, for scripts/e2e-ha.sh.

ha_probe.py loop URL QUERY          one query every 0.2 s until SIGTERM; one line
                                    per failure, then "total N failed M"
ha_probe.py count URL QUERY TIME    the instant query at TIME as JSON {series: value}
ha_probe.py health URL              exit 0 when URL answers 200

Logs in with VMAUTH_USER / VMAUTH_PASSWORD (vmauth asks for them;
VictoriaMetrics, VMAgent ignore them).
"""

import base64
import json
import os
import signal
import sys
import time
import urllib.parse
import urllib.request

CREDENTIALS = base64.b64encode(
    f"{os.environ.get('VMAUTH_USER', '')}:{os.environ.get('VMAUTH_PASSWORD', '')}".encode()
).decode()


def get(url, timeout):
    req = urllib.request.Request(url, headers={"Authorization": f"Basic {CREDENTIALS}"})
    return urllib.request.urlopen(req, timeout=timeout)


def query(base, q, at=None, timeout=5):
    params = {"query": q}
    if at is not None:
        params["time"] = str(at)
    url = f"{base}/api/v1/query?{urllib.parse.urlencode(params)}"
    with get(url, timeout) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"status {body.get('status')}: {body.get('error')}")
    return {
        ",".join(f"{k}={v}" for k, v in sorted(s["metric"].items())): float(
            s["value"][1]
        )
        for s in body["data"]["result"]
    }


def loop(base, q):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    total = failed = 0
    while not stop:
        total += 1
        try:
            if not query(base, q):
                raise RuntimeError("empty result")
        except (
            OSError,
            ValueError,
            RuntimeError,
        ) as e:  # refused, timeout, HTTP, bad JSON
            failed += 1
            print(f"failed at {time.time():.1f}: {e}", flush=True)
        time.sleep(0.2)
    print(f"total {total} failed {failed}", flush=True)


def main():
    mode, base = sys.argv[1], sys.argv[2]
    if mode == "loop":
        loop(base, sys.argv[3])
    elif mode == "count":
        print(json.dumps(query(base, sys.argv[3], float(sys.argv[4]))))
    elif mode == "health":
        try:
            with get(base, 2) as r:
                sys.exit(0 if r.status == 200 else 1)
        except OSError:
            sys.exit(1)
    else:
        sys.exit(f"ha_probe.py: unknown mode {mode!r} (loop, count, health)")


if __name__ == "__main__":
    main()
