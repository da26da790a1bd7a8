"""A training job measured by the installed ``algalon`` wheel, as a user runs it.

Runs on its own, with nothing from the repository on ``sys.path``: in a fresh
virtualenv and in a container that has Python but no Rust. NVML is the fake
library named by ``ALGALON_NVML_LIB`` with ``ALGALON_FAKE_NVML_SCENARIO`` set
to ``constant.json`` (an H100 drawing 312.5 W with an energy counter, a T4
drawing 27.25 W without one). Prints one line per check and exits non-zero on
the first failure.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import urllib.request

EXPECTED_VERSION = os.environ.get("ALGALON_EXPECT_VERSION")
H100 = "GPU-11111111-2222-3333-4444-555555555550"
T4 = "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeee1"


def check(ok: bool, what: str) -> None:
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        sys.exit(1)


def main() -> None:
    for tool in ("cargo", "rustc"):
        check(shutil.which(tool) is None, f"no {tool} on PATH")

    import algalon

    here = os.path.dirname(os.path.abspath(algalon.__file__))
    check("site-packages" in here, f"algalon imported from an installation ({here})")
    if EXPECTED_VERSION:
        check(
            algalon.__version__ == EXPECTED_VERSION,
            f"algalon.__version__ {algalon.__version__} == {EXPECTED_VERSION}",
        )

    mon = algalon.Monitor(interval=0.05)
    with mon.job("smoke", labels={"team": "dist"}) as job:
        time.sleep(0.6)
        job.count(samples=100)
    report = job.report
    by_uuid = {g.uuid: g for g in report.gpus}
    check(set(by_uuid) == {H100, T4}, f"both GPUs measured: {sorted(by_uuid)}")
    h100, t4 = by_uuid[H100], by_uuid[T4]
    check(
        h100.energy_source == "counter",
        f"H100 energy from its counter ({h100.energy_source})",
    )
    check(
        t4.energy_source == "integrated",
        f"T4 energy integrated from power ({t4.energy_source})",
    )
    # With the energy counter, mean power is energy over the duration.
    check(
        h100.power_mean_w is not None
        and h100.energy_j is not None
        and abs(h100.power_mean_w - h100.energy_j / report.duration_s) < 1e-6
        and abs(h100.power_mean_w - 312.5) < 312.5 * 0.01,
        f"H100 mean power 312.5 W = energy / duration ({h100.power_mean_w})",
    )
    # 0.6 s at 312.5 W, within the window's boundary samples.
    check(
        h100.energy_j is not None and 150 < h100.energy_j < 400,
        f"H100 energy {h100.energy_j} J for ~0.6 s at 312.5 W",
    )
    check(
        report.energy_per_sample is not None and report.energy_per_sample > 0,
        f"energy per sample {report.energy_per_sample} J",
    )
    restored = algalon.Report.from_json(json.dumps(report.to_dict()))
    check(restored.energy_j == report.energy_j, "report survives a JSON round trip")

    server = mon.serve(port=0)
    with urllib.request.urlopen(
        f"http://127.0.0.1:{server.port}/metrics", timeout=10
    ) as r:
        body = r.read().decode()
    check(
        f'algalon_job_gpu_energy_joules_total{{job_id="{report.id}"' in body,
        "the job's series served on /metrics",
    )
    mon.close()
    print("smoke job passed", flush=True)


if __name__ == "__main__":
    main()
