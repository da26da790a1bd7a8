"""``Monitor.track``: measure every call of a function as a job."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ._algalon import Monitor

F = TypeVar("F", bound=Callable[..., Any])


def track(
    monitor: Monitor,
    name: str | Callable[..., Any] | None = None,
    labels: Mapping[str, str | int | float | bool] | None = None,
) -> Any:
    """Decorator (``@mon.track``, ``@mon.track("name")``) or, given the function, its wrapper.

    Coroutine functions get an async wrapper: the job spans the awaited body.
    The boundary samples at start and end are blocking NVML reads of a few
    milliseconds; they release the GIL but do block the event loop that long.
    """
    if callable(name):
        return _wrap(monitor, name, None, labels)

    def decorate(func: F) -> F:
        return _wrap(monitor, func, name, labels)

    return decorate


def _wrap(
    monitor: Monitor,
    func: F,
    name: str | None,
    labels: Mapping[str, str | int | float | bool] | None,
) -> F:
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
                    awrapper.last_report = job.report  # type: ignore[attr-defined]

        awrapper.last_report = None  # type: ignore[attr-defined]
        return awrapper  # type: ignore[return-value]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        job = monitor.job(job_name, labels=labels)
        try:
            with job:
                return func(*args, **kwargs)
        finally:
            if job.id is not None and not job.running:
                wrapper.last_report = job.report  # type: ignore[attr-defined]

    wrapper.last_report = None  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
