"""``Monitor.track``: measure every call of a function as a job."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._algalon import Monitor


def track(
    monitor: Monitor,
    name: str | Callable[..., Any] | None = None,
    labels: Mapping[str, str | int | float | bool] | None = None,
) -> Any:
    """Decorator (``@mon.track``, ``@mon.track("name")``) or, given the function, its wrapper.

    The wrapper has a ``last_report`` attribute (typed by the stubs'
    ``_Tracked`` protocol): the report of its latest call.

    Coroutine functions get an async wrapper: the job spans the awaited body.
    The boundary samples at start and end are blocking NVML reads of a few
    milliseconds; they release the GIL but do block the event loop that long.
    """
    if callable(name):
        return _wrap(monitor, name, None, labels)

    def decorate(func: Callable[..., Any]) -> Any:
        return _wrap(monitor, func, name, labels)

    return decorate


def _wrap(
    monitor: Monitor,
    func: Callable[..., Any],
    name: str | None,
    labels: Mapping[str, str | int | float | bool] | None,
) -> Any:
    job_name = name or getattr(func, "__qualname__", None) or repr(func)

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def awrapper(*args: Any, **kwargs: Any) -> Any:
            job = monitor.job(job_name, labels=labels)
            try:
                with job:
                    return await func(*args, **kwargs)
            finally:
                if job.id is not None and not job.running:
                    setattr(awrapper, "last_report", job.report)  # noqa: B010

        setattr(awrapper, "last_report", None)  # noqa: B010
        return awrapper

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        job = monitor.job(job_name, labels=labels)
        try:
            with job:
                return func(*args, **kwargs)
        finally:
            if job.id is not None and not job.running:
                setattr(wrapper, "last_report", job.report)  # noqa: B010

    setattr(wrapper, "last_report", None)  # noqa: B010
    return wrapper
