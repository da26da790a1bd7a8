"""Runs a short fake training loop under ``mon.job``, prints the report, and
shows that a report survives a failed push (JSON out, JSON in, push again).

    ALGALON_NVML_LIB=target/fake-nvml/libnvidia-ml.so.1 \
    ALGALON_FAKE_NVML_SCENARIO=testing/scenarios/h100x8.json \
    python examples/python/train_report.py [--push http://127.0.0.1:8428] [--report saved.json]

With ``--report FILE`` it trains nothing and (re)pushes a saved report.
"""

from __future__ import annotations

import argparse
import time

import algalon


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--push", metavar="URL", help="VictoriaMetrics base URL")
    parser.add_argument("--report", metavar="FILE", help="a report saved with to_json")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    if args.report:
        with open(args.report) as f:
            report = algalon.Report.from_json(f.read())
    else:
        mon = algalon.Monitor(interval=0.05)
        with mon.job("fake-training", labels={"team": "example"}) as job:
            for _ in range(args.steps):
                time.sleep(0.02)  # forward, backward, optimizer step
                job.count(samples=16, tokens=16 * 256)
        mon.close()
        report = job.report
    print(report)
    if report.energy_per_token is not None:
        print(f"energy per token: {report.energy_per_token * 1000:.3f} mJ")
    if args.push:
        try:
            report.push(args.push, timeout=5)
            print("pushed to", args.push)
        except algalon.PushError as e:
            path = "unpushed-report.json"
            with open(path, "w") as f:
                f.write(report.to_json(indent=2))
            print(f"{e}\nsaved to {path}; push it later with --report {path}")


if __name__ == "__main__":
    main()
