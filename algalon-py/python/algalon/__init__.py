"""Algalon: what a job cost on the GPUs.

Per-job GPU usage for training code, measured through NVML by a Rust
sampler thread that never holds the GIL::

    import algalon

    mon = algalon.Monitor(interval=0.1)   # the GPUs this process can see
    with mon.job("llama-finetune", labels={"team": "nlp"}) as job:
        train()
        job.count(samples=len(ds))
    print(job.report)                      # per-GPU energy, utilization, memory
    job.report.push("http://vm-host:8428")  # into VictoriaMetrics

Indices follow CUDA's view (``CUDA_VISIBLE_DEVICES``); reports give the CUDA
index and the physical NVML index and UUID of every GPU.
"""

import atexit as _atexit

from ._algalon import (
    AlgalonError,
    ConfigError,
    DeviceNotFoundError,
    Gpu,
    GpuNotFoundError,
    GpuReport,
    Job,
    MetricsServer,
    MigReport,
    Monitor,
    NvmlError,
    NvmlInitError,
    NvmlNotFoundError,
    NvmlUnavailableError,
    PushError,
    Report,
    __version__,
    _at_exit,
    gpus,
)
from ._errors import ServeError

# Before CPython ends daemon threads at exit, let calls in flight come back
# and make later ones keep the GIL (see algalon-py/src/exit.rs).
_atexit.register(_at_exit)

__all__ = [
    "AlgalonError",
    "ConfigError",
    "DeviceNotFoundError",
    "Gpu",
    "GpuNotFoundError",
    "GpuReport",
    "Job",
    "MetricsServer",
    "MigReport",
    "Monitor",
    "NvmlError",
    "NvmlInitError",
    "NvmlNotFoundError",
    "NvmlUnavailableError",
    "PushError",
    "Report",
    "ServeError",
    "__version__",
    "gpus",
]
