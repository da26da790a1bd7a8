"""Type stubs of the native module ``algalon._algalon`` (checked by ``mypy.stubtest``)."""

import os
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import (
    Any,
    TypeAlias,
    TypeVar,
    final,
    overload,
)

_F = TypeVar("_F", bound=Callable[..., Any])
_LabelValue: TypeAlias = str | int | float | bool

__all__ = [
    "AlgalonError",
    "ConfigError",
    "DeviceNotFoundError",
    "Gpu",
    "GpuNotFoundError",
    "GpuReport",
    "Job",
    "MetricsServer",
    "Monitor",
    "NvmlError",
    "NvmlInitError",
    "NvmlNotFoundError",
    "NvmlUnavailableError",
    "PushError",
    "Report",
    "__version__",
    "gpus",
]

__version__: str

def gpus(nvml_lib: str | os.PathLike[str] | None = None) -> list[Gpu]:
    """The GPUs this process may use (``CUDA_VISIBLE_DEVICES`` applied), in CUDA order."""

@final
class Gpu:
    """One GPU at one instant."""

    @property
    def cuda_index(self) -> int | None: ...
    @property
    def nvml_index(self) -> int: ...
    @property
    def uuid(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def pci_bus_id(self) -> str: ...
    @property
    def up(self) -> bool: ...
    @property
    def utilization(self) -> float | None: ...
    @property
    def memory_used_bytes(self) -> int | None: ...
    @property
    def memory_total_bytes(self) -> int | None: ...
    @property
    def power_w(self) -> float | None: ...
    @property
    def temperature_c(self) -> float | None: ...
    @property
    def energy_j(self) -> float | None: ...
    @property
    def pids(self) -> list[int]: ...

@final
class Monitor:
    """Samples the GPUs this process uses in the background and measures jobs."""

    def __new__(
        cls,
        interval: float = 0.1,
        gpus: Sequence[int | str] | None = None,
        nvml_lib: str | os.PathLike[str] | None = None,
    ) -> Monitor: ...
    def job(
        self,
        name: str,
        labels: Mapping[str, _LabelValue] | None = None,
        pids: Sequence[int] | None = None,
    ) -> Job: ...
    def begin_window(
        self,
        name: str,
        labels: Mapping[str, _LabelValue] | None = None,
        pids: Sequence[int] | None = None,
    ) -> Job: ...
    def end_window(self, name: str) -> Report: ...
    @overload
    def track(
        self, name: _F, *, labels: Mapping[str, _LabelValue] | None = None
    ) -> _F: ...
    @overload
    def track(
        self,
        name: str | None = None,
        *,
        labels: Mapping[str, _LabelValue] | None = None,
    ) -> Callable[[_F], _F]: ...
    def serve(self, port: int = 9401, addr: str = "127.0.0.1") -> MetricsServer: ...
    def reports(self) -> list[Report]: ...
    @property
    def gpus(self) -> list[Gpu]: ...
    @property
    def interval(self) -> float: ...
    @property
    def library(self) -> str: ...
    @property
    def hostname(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...
    def __enter__(self) -> Monitor: ...
    def __exit__(
        self,
        *_exc: object,
    ) -> bool: ...

@final
class Job:
    """A job or window of a Monitor."""

    def start(self) -> Job: ...
    def end(self) -> Report: ...
    def count(self, **counts: float) -> None: ...
    @property
    def report(self) -> Report: ...
    @property
    def name(self) -> str: ...
    @property
    def labels(self) -> dict[str, str]: ...
    @property
    def running(self) -> bool: ...
    @property
    def id(self) -> int | None: ...
    def __enter__(self) -> Job: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        _exc: BaseException | None = None,
        _tb: TracebackType | None = None,
    ) -> bool:
        """Ends the job; an exception leaving the block marks the report ``interrupted``."""

@final
class GpuReport:
    """What one window saw on one GPU."""

    @property
    def cuda_index(self) -> int | None: ...
    @property
    def nvml_index(self) -> int: ...
    @property
    def uuid(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def energy_j(self) -> float | None: ...
    @property
    def energy_source(self) -> str | None: ...
    @property
    def energy_note(self) -> str | None: ...
    @property
    def util_mean(self) -> float | None: ...
    @property
    def util_max(self) -> float | None: ...
    @property
    def memory_peak_bytes(self) -> int | None: ...
    @property
    def power_mean_w(self) -> float | None: ...
    @property
    def power_max_w(self) -> float | None: ...
    @property
    def temperature_max_c(self) -> float | None: ...
    @property
    def samples(self) -> int: ...
    @property
    def process_memory_peak_bytes(self) -> int | None: ...
    @property
    def down_reason(self) -> str | None: ...

@final
class Report:
    """A finished (or still running) job or window."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def labels(self) -> dict[str, str]: ...
    @property
    def hostname(self) -> str: ...
    @property
    def running(self) -> bool: ...
    @property
    def interrupted(self) -> bool:
        """True when an exception (``KeyboardInterrupt``, …) left the job's ``with`` block."""
    @property
    def error(self) -> str | None:
        """That exception's type name (``"KeyboardInterrupt"``), ``"dropped"`` for a job
        collected while running; ``None`` if not interrupted."""
    @property
    def started_at(self) -> float: ...
    @property
    def ended_at(self) -> float: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def energy_j(self) -> float | None: ...
    @property
    def counts(self) -> dict[str, float]: ...
    @property
    def gpus(self) -> list[GpuReport]: ...
    @property
    def energy_per_sample(self) -> float | None: ...
    @property
    def energy_per_token(self) -> float | None: ...
    def energy_per(self, unit: str) -> float | None: ...
    def to_dict(self) -> dict[str, Any]: ...
    def to_json(self, indent: int | None = None) -> str: ...
    @staticmethod
    def from_json(text: str) -> Report: ...
    @staticmethod
    def from_dict(data: dict[str, Any]) -> Report: ...
    def to_prometheus(self, timestamp_ms: int | None = None) -> str: ...
    def push(self, url: str, *, timeout: float = 10.0, retries: int = 1) -> None: ...

@final
class MetricsServer:
    """A ``/metrics`` server started by ``Monitor.serve``."""

    @property
    def addr(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def url(self) -> str: ...
    def close(self) -> None: ...

class AlgalonError(Exception):
    """Base class of every error Algalon raises."""

class NvmlUnavailableError(AlgalonError):
    """NVML cannot be used on this machine."""

class NvmlNotFoundError(NvmlUnavailableError):
    """libnvidia-ml.so.1 could not be loaded."""

class NvmlInitError(NvmlUnavailableError):
    """NVML loaded but refused to initialise."""

class NvmlError(AlgalonError):
    """An NVML call that Algalon cannot do without failed."""

class DeviceNotFoundError(AlgalonError):
    """A GPU id matches no GPU of this host."""

GpuNotFoundError = DeviceNotFoundError

class ConfigError(AlgalonError):
    """A setting Algalon cannot use."""

class PushError(AlgalonError):
    """A report could not be pushed; the report itself is kept."""
