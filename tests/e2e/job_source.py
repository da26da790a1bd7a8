"""A training process as the e2e pipeline test sees it: the `algalon` Python
package on the fake NVML measures jobs, serves their series on /metrics
(scraped by VMAgent as an `algalon-jobs` target) and pushes one finished
job's report straight to VictoriaMetrics, the two ways the jobs dashboard
gets its data.

    python3 job_source.py --port P --push http://127.0.0.1:8428 --nvml-lib LIB

With --mig-scenario, the process runs on the MIG device its
CUDA_VISIBLE_DEVICES names (`MIG-<uuid>`, as Kubernetes and Slurm set it) on
the scenario of ALGALON_FAKE_NVML_SCENARIO, and is itself one of that
instance's processes (the scenario is written again with its PID, to the
path given): a finished job and a running window, served only.

    CUDA_VISIBLE_DEVICES=MIG-… python3 job_source.py --port P --nvml-lib LIB \
        --mig-scenario OUT.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# The job's own process in its MIG instance, as NVML lists it.
OWN_MIB = 1024


def own_process_in_instance(out: Path) -> str:
    """Writes the scenario of ALGALON_FAKE_NVML_SCENARIO to `out` with this
    process running in the MIG instance CUDA_VISIBLE_DEVICES names, and
    points the fake NVML at it. Returns that instance's UUID."""
    uuid = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    src = os.environ.get("ALGALON_FAKE_NVML_SCENARIO", "")
    if not uuid.startswith("MIG-") or not src:
        raise SystemExit(
            "job_source: --mig-scenario needs CUDA_VISIBLE_DEVICES=MIG-<uuid> and "
            f"ALGALON_FAKE_NVML_SCENARIO (got {uuid!r}, {src!r})"
        )
    scenario = json.loads(Path(src).read_text())
    for gpu in scenario["gpus"]:
        for inst in (gpu.get("mig") or {}).get("instances", []):
            if inst["uuid"] == uuid:
                gpu.setdefault("processes", []).append(
                    {
                        "pid": os.getpid(),
                        "name": "python3",
                        "type": "compute",
                        "used_mib": OWN_MIB,
                        "gpu_instance_id": inst["gpu_instance_id"],
                        "compute_instance_id": inst["compute_instance_id"],
                    }
                )
                out.write_text(json.dumps(scenario))
                os.environ["ALGALON_FAKE_NVML_SCENARIO"] = str(out)
                return uuid
    raise SystemExit(f"job_source: {src} has no MIG instance {uuid}")


def whole_gpu_jobs(mon, push: str):
    with mon.job("pretrain", labels={"team": "e2e"}) as job:
        time.sleep(1.0)
        job.count(samples=512, tokens=262144)

    # Short jobs push their report when they end.
    with mon.job("evaluate", labels={"team": "e2e"}) as job:
        time.sleep(0.5)
        job.count(samples=128)
    job.report.push(push)

    return mon.begin_window("finetune", labels={"team": "e2e"})


def mig_jobs(mon, uuid: str):
    with mon.job("mig-infer", labels={"team": "e2e"}) as job:
        time.sleep(1.0)
        job.count(samples=256)
    (gpu,) = job.report.gpus
    if gpu.mig is None or gpu.mig.uuid != uuid:
        raise SystemExit(f"job_source: the job did not run on {uuid}: {job.report}")
    return mon.begin_window("mig-serve", labels={"team": "e2e"})


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--push", help="VictoriaMetrics base URL (whole GPUs)")
    parser.add_argument("--nvml-lib", required=True)
    parser.add_argument(
        "--mig-scenario",
        type=Path,
        help="run on the MIG device of CUDA_VISIBLE_DEVICES; the scenario with "
        "this process in it is written here",
    )
    args = parser.parse_args()
    if not args.mig_scenario and not args.push:
        parser.error("--push is needed on whole GPUs")
    uuid = own_process_in_instance(args.mig_scenario) if args.mig_scenario else ""
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
    running = mig_jobs(mon, uuid) if uuid else whole_gpu_jobs(mon, args.push)
    print("job_source: ready", flush=True)
    while True:  # until the test stops this process
        time.sleep(1.0)
        running.count(samples=32, tokens=16384)


if __name__ == "__main__":
    sys.exit(main())
