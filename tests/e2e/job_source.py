"""A training process as the e2e pipeline test sees it: the `algalon` Python
package on the fake NVML measures jobs, serves their series on /metrics
(scraped by VMAgent as an `algalon-jobs` target) and pushes one finished
job's report straight to VictoriaMetrics, the two ways the jobs dashboard
gets its data.

    python3 job_source.py --port P --push http://127.0.0.1:8428 --nvml-lib LIB
"""

from __future__ import annotations

import argparse
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--push", required=True, help="VictoriaMetrics base URL")
    parser.add_argument("--nvml-lib", required=True)
    args = parser.parse_args()
    try:
        import algalon
    except ImportError as e:
        print(
            f"job_source: cannot import the algalon Python package ({e}): "
            "build and install it first (make test-python-pkg, or pip install ./algalon-py)",
            file=sys.stderr,
        )
        return 2

    mon = algalon.Monitor(interval=0.25, nvml_lib=args.nvml_lib)
    mon.serve(port=args.port, addr="127.0.0.1")

    with mon.job("pretrain", labels={"team": "e2e"}) as job:
        time.sleep(1.0)
        job.count(samples=512, tokens=262144)

    # Short jobs push their report when they end.
    with mon.job("evaluate", labels={"team": "e2e"}) as job:
        time.sleep(0.5)
        job.count(samples=128)
    job.report.push(args.push)

    running = mon.begin_window("finetune", labels={"team": "e2e"})
    print("job_source: ready", flush=True)
    while True:  # until the test stops this process
        time.sleep(1.0)
        running.count(samples=32, tokens=16384)


if __name__ == "__main__":
    sys.exit(main())
