#!/usr/bin/env python3
"""Hostile clients against a running algalon-exporter, with the figures for
RELIABILITY.md.

Starts a release exporter on 127.0.0.1 against the fake NVML, then:

1. slowloris: holds --connections connections (half trickling a request head
   one byte per round, half silent, reopening those the exporter closes) for
   --duration seconds while a well-behaved scraper GETs /metrics every
   100 ms; reports connections opened and held, scrapes served and their
   p50/p99, the exporter's sockets and RSS before / peak / after;
2. basic auth: the median time of a 401 for a known user with a wrong
   password and for an unknown user (both must pay one bcrypt verify), next
   to /health (no bcrypt).

Python 3.11 standard library only.

    cargo build --release -p algalon-exporter && make fake-nvml
    python3 scripts/hostile-clients.py [--connections 2000] [--duration 10]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bcrypt (cost 10) of "s3cret", for the basic-auth user "prometheus".
HASH = "$2b$10$pye2TOWAb1Iyma3jc2BhbuzJ1kA1LT8FBalctQQMLw0ngT5CLv3vG"
HEAD = b"GET /metrics HTTP/1.1\r\nHost: flood\r\nX-Slow: "


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def sockets(pid: int) -> int:
    n = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd).startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


class Exporter:
    """The exporter binary on 127.0.0.1:0, killed by stop()."""

    def __init__(
        self, binary: Path, nvml: Path, scenario: Path, args: list[str]
    ) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALGALON_")}
        env["ALGALON_FAKE_NVML_SCENARIO"] = str(scenario)
        self.proc = subprocess.Popen(
            [str(binary), "--nvml-lib", str(nvml), "-a", "127.0.0.1:0", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log: list[str] = []
        self.addr: tuple[str, int] | None = None
        threading.Thread(target=self._read_log, daemon=True).start()
        deadline = time.monotonic() + 30
        while self.addr is None:
            if self.proc.poll() is not None:
                sys.exit("the exporter exited:\n" + "\n".join(self.log))
            if time.monotonic() > deadline:
                self.stop()
                sys.exit("the exporter did not listen within 30 s")
            time.sleep(0.02)

    def _read_log(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line.rstrip("\n"))
            m = re.search(r"listening on https?://(\S+):(\d+)", line)
            if m:
                self.addr = (m.group(1), int(m.group(2)))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def get(self, path: str, headers: dict[str, str] | None = None) -> int:
        assert self.addr is not None
        conn = http.client.HTTPConnection(*self.addr, timeout=10)
        try:
            conn.request("GET", path, headers=headers or {})
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@dataclass
class Flood:
    """Holds `count` connections open against `addr` until stopped."""

    addr: tuple[str, int]
    count: int
    opened: int = 0
    peak_open: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def _open(self, i: int) -> tuple[socket.socket, int] | None:
        self.opened += 1
        try:
            s = socket.create_connection(self.addr, timeout=2)
        except OSError:
            return None
        s.setblocking(False)
        # Even connections trickle a head, odd ones stay silent (-1).
        return (s, 0 if i % 2 == 0 else -1)

    def run(self) -> None:
        conns = [self._open(i) for i in range(self.count)]
        while not self.stop.is_set():
            reopened = alive = 0
            for i, entry in enumerate(conns):
                closed = entry is None
                if entry is not None:
                    s, sent = entry
                    try:
                        s.recv(512)
                        closed = True  # EOF, or a 503: the exporter let go
                    except BlockingIOError:
                        pass
                    except OSError:
                        closed = True
                    if not closed and sent >= 0:
                        byte = HEAD[sent : sent + 1] or b"a"
                        try:
                            s.send(byte)
                            conns[i] = (s, sent + 1)
                        except BlockingIOError:
                            pass
                        except OSError:
                            closed = True
                    if closed:
                        s.close()
                if closed:
                    conns[i] = None
                    if reopened < 200:
                        reopened += 1
                        conns[i] = self._open(i)
                alive += conns[i] is not None
            self.peak_open = max(self.peak_open, alive)
            time.sleep(0.1)
        for entry in conns:
            if entry is not None:
                entry[0].close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round((len(ordered) - 1) * p))]


def slowloris(exp: Exporter, connections: int, duration: float) -> None:
    assert exp.addr is not None
    for _ in range(20):
        exp.get("/metrics")
    rss_before = rss_kib(exp.pid)
    flood = Flood(exp.addr, connections)
    flooder = threading.Thread(target=flood.run, daemon=True)
    flooder.start()
    deadline = time.monotonic() + 20
    while sockets(exp.pid) < 250 and time.monotonic() < deadline:
        time.sleep(0.1)

    latencies: list[float] = []
    failures: list[str] = []
    stop = threading.Event()

    def scrape() -> None:
        while not stop.is_set():
            t = time.monotonic()
            try:
                status = exp.get("/metrics")
                if status != 200:
                    failures.append(str(status))
            except OSError as e:
                failures.append(type(e).__name__)
            latencies.append(time.monotonic() - t)
            time.sleep(0.1)

    scraper = threading.Thread(target=scrape, daemon=True)
    scraper.start()
    rss_peak, sockets_peak = rss_before, 0
    end = time.monotonic() + duration
    while time.monotonic() < end:
        rss_peak = max(rss_peak, rss_kib(exp.pid))
        sockets_peak = max(sockets_peak, sockets(exp.pid))
        time.sleep(0.2)
    stop.set()
    scraper.join()
    flood.stop.set()
    flooder.join()
    time.sleep(2)
    rss_after = rss_kib(exp.pid)
    sockets_after = sockets(exp.pid)

    ms = [x * 1000 for x in latencies]
    print(f"slowloris: a flood of {connections} connections for {duration:.0f} s")
    print(
        f"  flood: {flood.opened} connections opened, at most {flood.peak_open} open at once"
    )
    print(f"  exporter sockets: peak {sockets_peak}, {sockets_after} after the flood")
    print(
        f"  scraper: {len(latencies) - len(failures)} of {len(latencies)} scrapes served, "
        f"p50 {percentile(ms, 0.5):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, "
        f"max {max(ms):.1f} ms"
    )
    if failures:
        print(f"  failed scrapes: {', '.join(failures[:20])}")
    print(
        f"  RSS: before {rss_before / 1024:.1f} MiB, peak {rss_peak / 1024:.1f} MiB, "
        f"after {rss_after / 1024:.1f} MiB"
    )


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def auth_timing(exp: Exporter, rounds: int) -> None:
    assert exp.get("/metrics", basic("prometheus", "s3cret")) == 200
    known: list[float] = []
    unknown: list[float] = []
    health: list[float] = []
    for i in range(rounds):
        for sink, path, headers, want in (
            (known, "/metrics", basic("prometheus", f"wrong{i}"), 401),
            (unknown, "/metrics", basic(f"nobody{i}", "s3cret"), 401),
            (health, "/health", {}, 200),
        ):
            t = time.monotonic()
            status = exp.get(path, headers)
            sink.append((time.monotonic() - t) * 1000)
            if status != want:
                sys.exit(f"GET {path}: {status}, expected {want}")
    k, u, h = (statistics.median(x) for x in (known, unknown, health))
    print(f"basic auth (bcrypt cost 10), medians of {rounds} interleaved requests:")
    print(f"  401 known user, wrong password: {k:.1f} ms")
    print(f"  401 unknown user:               {u:.1f} ms  (ratio {u / k:.2f})")
    print(f"  /health, no bcrypt:             {h:.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--exporter", type=Path, default=ROOT / "target/release/algalon-exporter"
    )
    ap.add_argument(
        "--nvml-lib", type=Path, default=ROOT / "target/fake-nvml/libnvidia-ml.so.1"
    )
    ap.add_argument(
        "--scenario", type=Path, default=ROOT / "testing/scenarios/h100x8.json"
    )
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--auth-rounds", type=int, default=40)
    args = ap.parse_args()
    for path in (args.exporter, args.nvml_lib, args.scenario):
        if not path.exists():
            sys.exit(
                f"{path} not found (cargo build --release -p algalon-exporter; make fake-nvml)"
            )

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.connections + 500
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            sys.exit(f"open-file limit {hard} is below {want}: lower --connections")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    exp = Exporter(args.exporter, args.nvml_lib, args.scenario, ["-c", "1000"])
    try:
        slowloris(exp, args.connections, args.duration)
    finally:
        exp.stop()

    with tempfile.TemporaryDirectory() as tmp:
        web = Path(tmp) / "web.yml"
        web.write_text(f"basic_auth_users:\n  prometheus: {HASH}\n")
        exp = Exporter(
            args.exporter,
            args.nvml_lib,
            args.scenario,
            ["-c", "1000", "--web-config-file", str(web)],
        )
        try:
            auth_timing(exp, args.auth_rounds)
        finally:
            exp.stop()


if __name__ == "__main__":
    main()
