"""Type stubs of the native module ``algalon._algalon`` (checked by ``mypy.stubtest``).

Indices are CUDA's unless they say otherwise: ``cuda_index`` counts the
devices ``CUDA_VISIBLE_DEVICES`` leaves this process, ``nvml_index`` is the
host's numbering (``nvidia-smi``, the dashboards' ``gpu`` label). A reading
NVML cannot give is ``None``, never ``0``.
"""

import os
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import (
    Any,
    Literal,
    ParamSpec,
    Protocol,
    TypeAlias,
    TypeVar,
    final,
    overload,
)

_P = ParamSpec("_P")
_R_co = TypeVar("_R_co", covariant=True)
_LabelValue: TypeAlias = str | int | float | bool

class _Tracked(Protocol[_P, _R_co]):
    """A function wrapped by [`Monitor.track`][algalon.Monitor.track]: called as the original."""

    last_report: Report | None
    """The [`Report`][algalon.Report] of the latest call (``None`` before the first)."""
    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R_co: ...

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
    "__version__",
    "_at_exit",
    "gpus",
]

__version__: str
"""The version of the ``algalon`` package (Cargo's version of the crate)."""

def _at_exit() -> int:
    """The interpreter-exit hook the package registers with ``atexit``: later
    calls keep the GIL, calls in flight are waited for (at most 5 s). Returns
    how many were still in flight. Not for direct use."""

def gpus(nvml_lib: str | os.PathLike[str] | None = None) -> list[Gpu]:
    """
    The GPUs this process may use, as read now, in CUDA order.

    Opens NVML for the call, samples every GPU once and closes it again.
    ``CUDA_VISIBLE_DEVICES`` (unset: every GPU) chooses the GPUs and their
    order, as CUDA does; the ``MIG-…`` instances it names are left out.

    Args:
        nvml_lib: The NVML library to load. ``None`` loads
            ``$ALGALON_NVML_LIB`` if set, else the driver's
            ``libnvidia-ml.so.1``.

    Returns:
        One [`Gpu`][algalon.Gpu] per visible GPU, each with its ``cuda_index``.

    Raises:
        NvmlNotFoundError: The NVML library cannot be loaded (no NVIDIA
            driver, or a wrong ``nvml_lib`` / ``ALGALON_NVML_LIB``).
        NvmlInitError: NVML loaded but did not initialise (driver not
            running, no permission, library/driver version mismatch).
        NvmlError: An NVML call needed to list the GPUs failed.
        DeviceNotFoundError: ``CUDA_VISIBLE_DEVICES`` names a GPU this host
            does not have, or a UUID prefix that matches several.
        TypeError: ``nvml_lib`` is not a path.
    """

@final
class Gpu:
    """
    One GPU at one instant (from [`gpus`][algalon.gpus] or
    [`Monitor.gpus`][algalon.Monitor.gpus]). Immutable; read it again for
    newer figures.
    """

    @property
    def cuda_index(self) -> int | None:
        """Index in CUDA's numbering for this process (``cuda:N``); ``None`` when the GPU is not visible to it."""
    @property
    def nvml_index(self) -> int:
        """Index in NVML's numbering (``nvidia-smi``, the dashboards' ``gpu`` label)."""
    @property
    def uuid(self) -> str:
        """The ``GPU-…`` UUID."""
    @property
    def name(self) -> str:
        """The model name, e.g. ``"NVIDIA H100 80GB HBM3"``."""
    @property
    def pci_bus_id(self) -> str:
        """The PCI bus id, e.g. ``"00000000:18:00.0"``."""
    @property
    def up(self) -> bool:
        """``False`` when the GPU is lost or failing."""
    @property
    def utilization(self) -> float | None:
        """GPU utilization, %; ``None`` when NVML cannot give it."""
    @property
    def memory_used_bytes(self) -> int | None:
        """Framebuffer memory in use (by any process), bytes; ``None`` when unknown."""
    @property
    def memory_total_bytes(self) -> int | None:
        """Framebuffer memory size, bytes; ``None`` when unknown."""
    @property
    def power_w(self) -> float | None:
        """Power draw, W; ``None`` when NVML cannot give it."""
    @property
    def temperature_c(self) -> float | None:
        """GPU temperature, °C; ``None`` when NVML cannot give it."""
    @property
    def energy_j(self) -> float | None:
        """NVML's total-energy counter (since the driver loaded), J; ``None`` on GPUs without one."""
    @property
    def pids(self) -> list[int]:
        """PIDs of the processes with a context on the GPU (empty when NVML lists none)."""

@final
class Monitor:
    """
    Samples the GPUs this process uses on a background thread and measures jobs.

    The sampler thread is pure Rust and never takes the GIL; calls that wait
    on NVML (creating the Monitor, a job's start and end, ``close``) release
    it while they wait. A Monitor is a context manager: leaving ``with``
    closes it.

    After ``fork()`` the child cannot use its copy: every method that checks
    raises [`AlgalonError`][algalon.AlgalonError]; create a new Monitor there.
    """

    def __new__(
        cls,
        interval: float = 0.1,
        gpus: int | str | Sequence[int | str] | None = None,
        nvml_lib: str | os.PathLike[str] | None = None,
        *,
        missing_ok: bool = False,
    ) -> Monitor:
        """
        Opens NVML and starts sampling the chosen GPUs every ``interval`` seconds.

        Args:
            interval: Seconds between samples, more than 0 and at most 86400
                (a day).
            gpus: The GPUs to measure: one entry or a sequence of them. An
                ``int`` or ``"cuda:N"`` is a CUDA index (into the devices
                ``CUDA_VISIBLE_DEVICES`` leaves this process); another
                ``str`` is a ``GPU-…`` UUID or a unique prefix of one (any
                case), and may name a GPU outside ``CUDA_VISIBLE_DEVICES``,
                or a MIG device (``MIG-<uuid>``, ``MIG-GPU-<uuid>/<gi>/<ci>``).
                ``None`` measures every device this process can see
                (``MIG-…`` entries of ``CUDA_VISIBLE_DEVICES`` included: a
                job on a MIG device measures that instance), except
                under torchrun: with ``LOCAL_RANK`` set and more than one GPU
                visible, only ``cuda:LOCAL_RANK``, the GPU the rank uses by
                torchrun's convention, so that summing the ranks' energy
                counts each GPU once. Pass ``gpus`` to measure others.
            nvml_lib: The NVML library to load. ``None`` loads
                ``$ALGALON_NVML_LIB`` if set, else the driver's
                ``libnvidia-ml.so.1``.
            missing_ok: On a machine without a driver or GPU (NVML missing
                or not starting, or — with ``gpus=None`` — no GPU visible),
                run anyway instead of raising: a ``UserWarning`` says so,
                jobs record wall time only, their reports have no GPU and a
                note saying why (``report.notes``), and
                [`no_gpu_reason`][algalon.Monitor.no_gpu_reason] is set. A
                GPU named in ``gpus`` that does not exist still raises.

        Returns:
            A running Monitor.

        Raises:
            ConfigError: ``interval`` is not a number of seconds in (0, 86400].
            NvmlNotFoundError: The NVML library cannot be loaded.
            NvmlInitError: NVML loaded but did not initialise.
            NvmlError: An NVML call needed to list the GPUs failed.
            DeviceNotFoundError: An entry of ``gpus`` matches no GPU (a CUDA
                index out of range, an unknown or ambiguous UUID, text that
                is no device, or a numeric string such as ``"0"``), ``gpus``
                is an empty list, ``CUDA_VISIBLE_DEVICES`` names a GPU or MIG
                device this host does not have (the message lists the MIG
                devices there are),
                or nothing is left to measure (``CUDA_VISIBLE_DEVICES`` hides
                every GPU, or the host has none).
            AlgalonError: The sampling thread could not be started.
            TypeError: ``interval`` is not a number, ``gpus`` is not an
                ``int``, a ``str`` or a sequence of them, or ``nvml_lib`` not
                a path.

        Warns:
            UserWarning: ``CUDA_VISIBLE_DEVICES`` has an invalid entry: as
                CUDA does, the entries from it on are ignored (``"1,,2"`` is
                GPU 1).
        """
    def job(
        self,
        name: str,
        labels: Mapping[str, _LabelValue] | None = None,
        pids: Sequence[int] | None = None,
    ) -> Job:
        """
        A job over this Monitor's GPUs, not started yet.

        ``with mon.job("finetune", labels={"team": "nlp"}) as job:`` measures
        the block; ``job.start()`` / ``job.end()`` do the same without it.
        The job's own processes are this process and its descendants (read
        from ``/proc`` at start, then about every second), plus ``pids``.

        Args:
            name: The job's name (the ``job_name`` label), not blank.
            labels: Labels added to the job's series and report, besides the
                identity read from the environment (Slurm, torchrun,
                Kubernetes). Names must be Prometheus label names and not
                ``job_id``, ``job_name``, ``job``, ``instance`` or
                ``Hostname``; values are stored as ``str(value)``.
            pids: Processes outside this process tree whose GPU memory
                counts as the job's.

        Returns:
            A [`Job`][algalon.Job] that has not started.

        Raises:
            ValueError: ``name`` is blank, ``labels`` is not a mapping, or a
                label name or value is invalid (the message says which).
            AlgalonError: The Monitor was created in another process
                (``fork()``).
            TypeError: ``pids`` is not a sequence of ``int``.
            OverflowError: A PID is negative or too large.
        """
    def begin_window(
        self,
        name: str,
        labels: Mapping[str, _LabelValue] | None = None,
        pids: Sequence[int] | None = None,
    ) -> Job:
        """
        Opens a named window now, Zeus-style; [`end_window`][algalon.Monitor.end_window] closes it.

        Windows nest and overlap; two open windows cannot share a name. The
        window is measured like ``job(name, labels, pids).start()``.

        Args:
            name: The window's name, not blank and not that of an open window.
            labels: As for [`job`][algalon.Monitor.job].
            pids: As for [`job`][algalon.Monitor.job].

        Returns:
            The running [`Job`][algalon.Job] of the window.

        Raises:
            ValueError: A window named ``name`` is already open, or as for
                [`job`][algalon.Monitor.job].
            AlgalonError: The Monitor is closed, or was created in another
                process.
            TypeError: As for [`job`][algalon.Monitor.job].
            OverflowError: As for [`job`][algalon.Monitor.job].
        """
    def end_window(self, name: str) -> Report:
        """
        Closes the window ``begin_window(name)`` opened, after a last sample.

        Works on a closed Monitor too: the report then ends at the last
        sample taken before ``close()``.

        Args:
            name: The name given to ``begin_window``.

        Returns:
            The window's final [`Report`][algalon.Report].

        Raises:
            ValueError: No open window has that name (the message lists the
                open ones).
            AlgalonError: The Monitor was created in another process.
        """
    @overload
    def track(
        self,
        name: Callable[_P, _R_co],
        *,
        labels: Mapping[str, _LabelValue] | None = None,
    ) -> _Tracked[_P, _R_co]:
        """
        Decorator measuring every call of a function as a job: ``@mon.track``.

        Args:
            name: The function; the job is named after its ``__qualname__``.
            labels: As for [`job`][algalon.Monitor.job], checked now.

        Returns:
            The wrapped function (sync or async). Its ``last_report``
            attribute holds the [`Report`][algalon.Report] of its latest
            call (``None`` before the first).

        Raises:
            ValueError: A label name or value is invalid.
            AlgalonError: The Monitor was created in another process.
        """
    @overload
    def track(
        self,
        name: str | None = None,
        *,
        labels: Mapping[str, _LabelValue] | None = None,
    ) -> Callable[[Callable[_P, _R_co]], _Tracked[_P, _R_co]]:
        """
        Decorator factory measuring every call of a function as a job: ``@mon.track("evaluate")``.

        Args:
            name: The job's name; ``None`` uses the function's ``__qualname__``.
            labels: As for [`job`][algalon.Monitor.job], checked now.

        Returns:
            A decorator; the function it returns has a ``last_report``
            attribute holding the [`Report`][algalon.Report] of its latest
            call (``None`` before the first).

        Raises:
            ValueError: A label name or value is invalid.
            AlgalonError: The Monitor was created in another process.
        """
    def serve(self, port: int = 9401, addr: str = "127.0.0.1") -> MetricsServer:
        """
        Serves ``/metrics`` from a background thread: from the start,
        ``algalon_build_info`` (version, driver) and ``algalon_gpu_up`` of the
        measured GPUs; then this process's job series (``algalon_job_info``,
        energy, utilization, memory, duration).

        Args:
            port: TCP port; ``0`` picks a free one (see
                [`MetricsServer.port`][algalon.MetricsServer.port]).
            addr: IP address to bind (``"127.0.0.1"``, ``"0.0.0.0"``,
                ``"::"``); host names are refused.

        Returns:
            The running [`MetricsServer`][algalon.MetricsServer]; ``close()``
            on the Monitor stops it too.

        Raises:
            ServeError: The address cannot be bound: the port is in use, needs
                privileges, or ``addr`` is not this host's; the message names
                the address and what to do. An ``OSError`` too (with
                ``errno``), so ``except OSError`` catches it.
            OSError: ``addr`` is not an IP address.
            OverflowError: ``port`` is not in 0–65535.
            AlgalonError: The Monitor is closed, or was created in another
                process.
        """
    def reports(self) -> list[Report]:
        """
        Reports of the latest finished windows (up to 256 are kept), then of
        the open ones so far.

        Returns:
            A [`Report`][algalon.Report] per window; ``running`` tells the
            open ones.

        Raises:
            AlgalonError: The Monitor was created in another process.
        """
    @property
    def gpus(self) -> list[Gpu]:
        """
        The measured GPUs at the latest sample, in CUDA order (then those
        chosen by UUID outside ``CUDA_VISIBLE_DEVICES``).

        Raises:
            AlgalonError: The Monitor is closed, or was created in another
                process.
        """
    @property
    def interval(self) -> float:
        """Seconds between samples."""
    @property
    def library(self) -> str:
        """The NVML library in use (its path or soname)."""
    @property
    def hostname(self) -> str:
        """Host name reported with the series (the ``Hostname`` label)."""
    @property
    def no_gpu_reason(self) -> str | None:
        """Why no GPU is measured (``missing_ok=True`` on a machine without a driver or GPU); ``None`` when GPUs are measured."""
    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
    def close(self) -> None:
        """
        Stops sampling and serving. Idempotent.

        Open jobs can still be ended; their reports stop at the last sample.
        Waits up to 5 s for a sample in flight (a hung NVML call).

        Raises:
            AlgalonError: The Monitor was created in another process.
        """
    def __enter__(self) -> Monitor:
        """Returns the Monitor itself."""
    def __exit__(
        self,
        *_exc: object,
    ) -> Literal[False]:
        """
        Closes the Monitor.

        Returns:
            ``False``: an exception leaving the block is not swallowed.

        Raises:
            AlgalonError: The Monitor was created in another process.
        """

@final
class Job:
    """
    A job or window of a [`Monitor`][algalon.Monitor]: from
    [`Monitor.job`][algalon.Monitor.job] (not started) or
    [`Monitor.begin_window`][algalon.Monitor.begin_window] (running).

    A job runs once. One that is started without ``with``, never ended and
    collected ends there, marked interrupted with ``error`` ``"dropped"``.
    """

    def start(self) -> Job:
        """
        Starts measuring; a boundary sample is taken now.

        Returns:
            The job itself.

        Raises:
            ValueError: The job is already running or has ended.
            AlgalonError: Its Monitor is closed, or was created in another
                process.
        """
    def end(self) -> Report:
        """
        Stops measuring (a boundary sample is taken now, unless the Monitor
        is closed) and returns the report.

        Returns:
            The final [`Report`][algalon.Report], also kept as
            [`report`][algalon.Job.report].

        Raises:
            ValueError: The job has not started or has already ended.
            AlgalonError: Its Monitor was created in another process.
        """
    def count(self, **counts: float) -> None:
        """
        Adds progress, for energy per unit: ``job.count(samples=64, tokens=8192)``.

        Counts add up over calls; [`Report.energy_per`][algalon.Report.energy_per]
        divides the job's energy by them.

        Args:
            **counts: Amount per unit, each a finite number >= 0. Units are
                ``samples``, ``tokens``, ``steps``, ``batches``, ``epochs``,
                ``sequences``, ``images`` and ``requests``, so that a typo
                (``sample=``) is an error, not a second count.

        Raises:
            ValueError: The job is not running, a unit is not one of those
                (the message lists them and suggests the one meant), or a
                count is not a finite non-negative number.
            AlgalonError: Its Monitor was created in another process.
        """
    @property
    def report(self) -> Report:
        """
        The final report once the job ended; while it runs, the figures so far.

        Raises:
            ValueError: The job has not started.
            AlgalonError: The job runs and its Monitor was created in another
                process.
        """
    @property
    def name(self) -> str:
        """The job's name."""
    @property
    def labels(self) -> dict[str, str]:
        """The labels given (the report adds the environment's identity)."""
    @property
    def running(self) -> bool:
        """Whether the job is being measured now."""
    @property
    def id(self) -> str | None:
        """The job's globally unique id, a random UUID (the ``job_id`` label of its series), once started; ``None`` before."""
    def __enter__(self) -> Job:
        """
        Starts the job, as [`start`][algalon.Job.start].

        Raises:
            ValueError: The job is already running or has ended.
            AlgalonError: Its Monitor is closed, or was created in another
                process.
        """
    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        _exc: BaseException | None = None,
        _tb: TracebackType | None = None,
    ) -> Literal[False]:
        """
        Ends the job, as [`end`][algalon.Job.end].

        When an exception (``KeyboardInterrupt``, an error in the code) leaves
        the block, the report is still made, served and pushed as usual, and
        is marked ``interrupted`` with the exception's type as ``error``.

        Returns:
            ``False``: the exception, if any, is not swallowed.

        Raises:
            ValueError: The job is not running (ended inside the block).
            AlgalonError: Its Monitor was created in another process.
        """

@final
class MigReport:
    """
    What one window saw on a MIG device ([`GpuReport.mig`][algalon.GpuReport.mig]): the instance's own readings.

    A job whose ``CUDA_VISIBLE_DEVICES`` names ``MIG-<uuid>`` (or CUDA's
    ``MIG-GPU-<gpu uuid>/<gi>/<ci>``) measures that instance.
    """

    @property
    def uuid(self) -> str:
        """The MIG device's ``MIG-…`` UUID."""
    @property
    def profile(self) -> str:
        """Its profile (``"1g.10gb"``, ``"3g.40gb"``, …; dcgm-exporter's ``GPU_I_PROFILE``)."""
    @property
    def gpu_instance_id(self) -> int | None:
        """GPU instance id (dcgm-exporter's ``GPU_I_ID``)."""
    @property
    def compute_instance_id(self) -> int | None:
        """Compute instance id."""
    @property
    def slices(self) -> int | None:
        """Compute slices of the instance (3 for ``3g.40gb``)."""
    @property
    def parent_slices(self) -> int | None:
        """Compute slices of the whole parent GPU (7 on an A100 or H100)."""
    @property
    def share(self) -> float | None:
        """``slices / parent_slices``: what [`GpuReport.energy_estimate_j`][algalon.GpuReport.energy_estimate_j] apportions by."""
    @property
    def memory_total_bytes(self) -> int | None:
        """The instance's framebuffer size, bytes."""
    @property
    def sm_active_mean(self) -> float | None:
        """Mean ``DCGM_FI_PROF_SM_ACTIVE`` of the instance (0-1), where the GPU has GPM (Hopper and newer)."""
    @property
    def sm_occupancy_mean(self) -> float | None:
        """Mean ``DCGM_FI_PROF_SM_OCCUPANCY`` of the instance (0-1)."""
    @property
    def tensor_active_mean(self) -> float | None:
        """Mean ``DCGM_FI_PROF_PIPE_TENSOR_ACTIVE`` of the instance (0-1)."""
    @property
    def dram_active_mean(self) -> float | None:
        """Mean ``DCGM_FI_PROF_DRAM_ACTIVE`` of the instance (0-1)."""
    @property
    def pids(self) -> list[int]:
        """PIDs of every process NVML listed on the instance during the window (the job's own and others')."""
    @property
    def destroyed_at(self) -> float | None:
        """Unix time from which the instance no longer existed, when it was destroyed during the window (its readings stop there; the job goes on)."""
    def __eq__(self, other: object, /) -> bool:
        """Whether ``other`` is a MIG report with the same figures. MIG reports pickle and copy (through the core's JSON)."""

@final
class GpuReport:
    """
    What one window saw on one GPU (an item of [`Report.gpus`][algalon.Report.gpus]).

    For a job on a MIG device, ``mig`` is set: ``cuda_index``,
    ``nvml_index``, ``uuid`` and ``name`` are the parent GPU's,
    ``memory_peak_bytes`` and ``process_memory_peak_bytes`` the instance's,
    and energy and power the parent GPU's as a whole (``energy_scope``
    ``"parent_gpu"``) with the instance's share in ``energy_estimate_j``.
    """

    @property
    def cuda_index(self) -> int | None:
        """CUDA index in the measuring process (``cuda:N``); ``None`` when the GPU was chosen by UUID outside ``CUDA_VISIBLE_DEVICES``."""
    @property
    def nvml_index(self) -> int:
        """NVML index (``nvidia-smi``, the dashboards' ``gpu`` label)."""
    @property
    def uuid(self) -> str:
        """The ``GPU-…`` UUID."""
    @property
    def name(self) -> str:
        """The model name."""
    @property
    def energy_j(self) -> float | None:
        """Energy used during the window, J; ``None`` when it cannot be measured (``energy_note`` says why), never a made-up 0."""
    @property
    def energy_source(self) -> str | None:
        """``"counter"`` (NVML's total-energy counter) or ``"integrated"`` (power samples integrated over time); ``None`` with no energy."""
    @property
    def energy_note(self) -> str | None:
        """Why energy is missing or less exact than usual (too short a window, no counter, the GPU down for a while, a MIG device's shared parent energy, an instance destroyed); ``None`` otherwise."""
    @property
    def energy_scope(self) -> str:
        """
        Whose energy and power these are.

        ``"gpu"``: the GPU's own. ``"parent_gpu"``: a MIG device's parent
        GPU as a whole, shared by all its instances (NVML measures no
        energy per instance) — never the job's own.
        """
    @property
    def energy_estimate_j(self) -> float | None:
        """For a MIG device: ``energy_j`` × ``mig.share`` (its compute slices / the GPU's), J — an estimate, not a measurement; ``None`` for a whole GPU."""
    @property
    def mig(self) -> MigReport | None:
        """The MIG device measured; ``None`` for a whole GPU."""
    @property
    def util_mean(self) -> float | None:
        """Mean GPU utilization over the samples, %."""
    @property
    def util_max(self) -> float | None:
        """Highest GPU utilization, %."""
    @property
    def memory_peak_bytes(self) -> int | None:
        """Highest framebuffer memory in use on the GPU (by any process), bytes."""
    @property
    def power_mean_w(self) -> float | None:
        """Mean power draw, W: energy_j / duration when energy_source is "counter", else the mean of the power samples."""
    @property
    def power_max_w(self) -> float | None:
        """Highest power draw, W."""
    @property
    def temperature_max_c(self) -> float | None:
        """Highest temperature, °C."""
    @property
    def samples(self) -> int:
        """Samples taken while the GPU was up."""
    @property
    def process_memory_peak_bytes(self) -> int | None:
        """Highest GPU memory used by the job's own processes (this process, its children and any ``pids=``), bytes."""
    @property
    def down_reason(self) -> str | None:
        """Why the GPU was down during part of the window (lost, failing); its readings stop there. ``None`` if it stayed up."""
    def __eq__(self, other: object, /) -> bool:
        """Whether ``other`` is a GPU report with the same figures. GPU reports pickle and copy (through the core's JSON)."""

@final
class Report:
    """
    A finished (or still running) job or window.

    ``str(report)`` is a table per GPU. ``to_json`` / ``from_json`` keep a
    report (one that failed to push, say) and read it back; ``push`` sends
    its series to VictoriaMetrics. The report is a view over the core's
    report type, whose JSON schema the C library's
    ``algalon_job_report_json`` writes too. Reports pickle and deep-copy
    (for ``multiprocessing.Pool`` workers and ``all_gather_object``), and a
    report read back from its JSON ``==`` the original.
    """

    def __eq__(self, other: object, /) -> bool:
        """Whether ``other`` is a report with the same contents."""

    @property
    def id(self) -> str:
        """The job's globally unique id, a random UUID (the ``job_id`` label of its series).

        Unique across runs, ranks and hosts, so their pushed or scraped
        series never overwrite each other. Reports of schema 1 and 2 (whose
        id was a per-process number) read back with that number as text.
        """
    @property
    def slowest_sample_s(self) -> float | None:
        """Longest time one sample of the job took, s (``None`` in reports of schema 1 and 2)."""
    @property
    def notes(self) -> list[str]:
        """Caveats on the whole report, one sentence each.

        A sample slower than the Monitor's interval (a slow GPU or NVML
        call): the job's start and end may be late by up to
        ``slowest_sample_s``. Per-GPU caveats are in
        [`GpuReport.energy_note`][algalon.GpuReport.energy_note].
        """
    @property
    def name(self) -> str:
        """The job or window name."""
    @property
    def labels(self) -> dict[str, str]:
        """Identity from the environment (Slurm, torchrun, Kubernetes) merged with the user's labels."""
    @property
    def hostname(self) -> str:
        """Host the job ran on."""
    @property
    def running(self) -> bool:
        """``True`` for a report of a window that is still open."""
    @property
    def interrupted(self) -> bool:
        """``True`` when an exception (``KeyboardInterrupt``, …) left the job's ``with`` block, or its ``Job`` was collected while running; the report covers the job up to then."""
    @property
    def error(self) -> str | None:
        """
        The type name of the exception that interrupted the job
        (``"KeyboardInterrupt"``, ``"torch.OutOfMemoryError"``, …),
        ``"dropped"`` for a job collected while running; ``None`` if not
        interrupted.
        """
    @property
    def started_at(self) -> float:
        """Unix time of the first sample, s."""
    @property
    def ended_at(self) -> float:
        """Unix time of the last sample, s."""
    @property
    def duration_s(self) -> float:
        """Time between the first and the last sample, s."""
    @property
    def energy_j(self) -> float | None:
        """Energy of the whole GPUs whose energy is known, summed, J; ``None`` when no such GPU's is (a MIG device's parent energy is shared and left out: see ``energy_estimate_j``)."""
    @property
    def energy_estimate_j(self) -> float | None:
        """For a job on MIG devices: ``energy_j`` plus each MIG device's ``energy_estimate_j``, J — an estimate; ``None`` for a job on whole GPUs only."""
    @property
    def counts(self) -> dict[str, float]:
        """Progress the job counted with [`Job.count`][algalon.Job.count] (``samples``, ``tokens``, …)."""
    @property
    def gpus(self) -> list[GpuReport]:
        """Per GPU, in CUDA order (``gpus[0]`` is ``cuda:0``), then GPUs this process does not see, by NVML index."""
    @property
    def energy_per_sample(self) -> float | None:
        """Joules per counted sample (``job.count(samples=…)``); ``None`` as for [`energy_per`][algalon.Report.energy_per]."""
    @property
    def energy_per_token(self) -> float | None:
        """Joules per counted token (``job.count(tokens=…)``); ``None`` as for [`energy_per`][algalon.Report.energy_per]."""
    def energy_per(self, unit: str) -> float | None:
        """
        Joules per unit of a count: ``report.energy_per("tokens")``.

        Args:
            unit: The name the job counted with ``job.count(unit=…)``.

        Returns:
            ``energy_j`` divided by the count; ``None`` when the count is
            absent or zero or the energy unknown.
        """
    def to_dict(self) -> dict[str, Any]:
        """
        The report as plain data: the document ``to_json`` writes, parsed.

        Returns:
            A JSON-compatible dict (``schema``, ``id``, ``name``, ``labels``,
            ``gpus``, …) that [`from_dict`][algalon.Report.from_dict] reads.
        """
    def to_json(self, indent: int | None = None) -> str:
        """
        The report as a JSON document (schema 4), for [`from_json`][algalon.Report.from_json].

        Schema 3 (this version) has the job's UUID as ``id`` (a string) and
        adds ``slowest_sample_s`` (the longest sample, s) and ``notes``
        (caveats on the whole report); schema 2 added ``interrupted`` and
        ``error``.

        Args:
            indent: Spaces per indentation level; ``None`` writes one line.

        Returns:
            The JSON text. Non-finite numbers are written as ``null``.

        Raises:
            OverflowError: ``indent`` is negative.
        """
    @staticmethod
    def from_json(text: str) -> Report:
        """
        Reads a report written by [`to_json`][algalon.Report.to_json], e.g. one
        whose push failed, to push it again. Schema 1 documents read as not
        interrupted; the numeric ``id`` of schemas 1 and 2 reads as its text.

        Args:
            text: The JSON document.

        Returns:
            The report.

        Raises:
            ValueError: ``text`` is not an algalon report (the message says
                what is wrong), its schema is newer than this algalon reads,
                it has an ``error`` but is not ``interrupted``, or an
                ``energy_source`` is neither ``"counter"`` nor ``"integrated"``.
        """
    @staticmethod
    def from_dict(data: dict[str, Any]) -> Report:
        """
        Reads a report from the dict [`to_dict`][algalon.Report.to_dict] returns.

        Args:
            data: The report as plain data.

        Returns:
            The report.

        Raises:
            ValueError: As for [`from_json`][algalon.Report.from_json].
            TypeError: ``data`` is not a dict, or holds values JSON cannot
                encode.
        """
    def to_prometheus(self, timestamp_ms: int | None = None) -> str:
        """
        This report's series in the Prometheus text format, from the encoder
        [`Monitor.serve`][algalon.Monitor.serve] uses.

        Args:
            timestamp_ms: When given, every sample line carries this time
                (milliseconds since the epoch), as pushes need.

        Returns:
            The exposition text.
        """
    def push(self, url: str, *, timeout: float = 10.0, retries: int = 1) -> None:
        """
        Pushes the report's series to VictoriaMetrics (or vmagent).

        POSTs them to ``{url}/api/v1/import/prometheus`` (a ``url`` that
        already names an import path is used as given), stamped with the
        job's end time (now, for a running job) and with ``Hostname`` added
        to every series. The report stays usable either way.

        Args:
            url: ``http://`` or ``https://`` URL of VictoriaMetrics, e.g.
                ``"http://vm-host:8428"``.
            timeout: Seconds to wait for each attempt.
            retries: Extra attempts after a connection failure, a timeout or
                a 5xx answer (a 4xx answer is not retried).

        Raises:
            PushError: ``url`` is not an http(s) URL, or every attempt failed
                (the message gives the last answer or connection error).
            OverflowError: ``retries`` is negative.
        """

@final
class MetricsServer:
    """A ``/metrics`` server started by [`Monitor.serve`][algalon.Monitor.serve]."""

    @property
    def addr(self) -> str:
        """The IP address bound."""
    @property
    def port(self) -> int:
        """The port bound (the free one chosen, with ``port=0``)."""
    @property
    def url(self) -> str:
        """``http://addr:port/metrics``."""
    def close(self) -> None:
        """Stops serving. Idempotent."""

class AlgalonError(Exception):
    """
    Base class of every error Algalon raises. Raised itself for a Monitor
    used after ``close()`` or from a forked child, and for a sampling thread
    that cannot start.
    """

class NvmlUnavailableError(AlgalonError):
    """NVML (the NVIDIA Management Library) cannot be used on this machine."""

class NvmlNotFoundError(NvmlUnavailableError):
    """libnvidia-ml.so.1 could not be loaded (no NVIDIA driver, or not in the library path)."""

class NvmlInitError(NvmlUnavailableError):
    """NVML loaded but refused to initialise (driver not running, no permission)."""

class NvmlError(AlgalonError):
    """An NVML call that Algalon cannot do without failed."""

class DeviceNotFoundError(AlgalonError):
    """A GPU id (in ``CUDA_VISIBLE_DEVICES`` or ``gpus=[...]``) matches no GPU of this host."""

GpuNotFoundError = DeviceNotFoundError
"""Another name of [`DeviceNotFoundError`][algalon.DeviceNotFoundError]."""

class ConfigError(AlgalonError):
    """A setting Algalon cannot use (the sampling interval)."""

class PushError(AlgalonError):
    """A report could not be pushed to VictoriaMetrics; the report itself is kept."""
