"""Pushing a report to VictoriaMetrics' Prometheus import endpoint."""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping

from ._algalon import PushError

IMPORT_PATH = "/api/v1/import/prometheus"


def import_url(url: str, extra_labels: Mapping[str, str]) -> str:
    """``url`` as the import endpoint, with ``extra_label`` parameters added.

    A base URL (``http://vm:8428``) gets ``/api/v1/import/prometheus``; a URL
    that already names an import path (vmagent, a cluster's
    ``/insert/0/prometheus/api/v1/import/prometheus``) is used as given.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise PushError(
            f"cannot push to {url!r}: give an http(s) URL such as http://vm-host:8428"
        )
    path = parts.path
    if "/api/v1/import" not in path:
        path = path.rstrip("/") + IMPORT_PATH
    query = urllib.parse.parse_qsl(parts.query)
    query += [("extra_label", f"{k}={v}") for k, v in extra_labels.items() if v]
    return urllib.parse.urlunsplit(
        (parts.scheme, parts.netloc, path, urllib.parse.urlencode(query), "")
    )


def push(
    body: str,
    url: str,
    extra_labels: Mapping[str, str],
    timeout: float,
    retries: int,
) -> None:
    """POSTs ``body`` (Prometheus text) to ``url``; raises ``PushError``.

    Connection failures, timeouts and 5xx answers are retried ``retries``
    times with a short back-off; 4xx answers are not (the request is wrong).
    """
    target = import_url(url, extra_labels)
    data = body.encode("utf-8")
    attempts = max(0, retries) + 1
    last = ""
    made = 0
    for attempt in range(attempts):
        made += 1
        if attempt:
            time.sleep(min(0.5 * 2 ** (attempt - 1), 5.0))
        request = urllib.request.Request(
            target,
            data=data,
            method="POST",
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
                return
        except urllib.error.HTTPError as e:
            detail = e.read(300).decode("utf-8", "replace").strip()
            last = f"HTTP {e.code} {e.reason}" + (f": {detail}" if detail else "")
            if e.code < 500:
                break
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            last = f"cannot connect: {reason}"
    tries = "1 attempt" if made == 1 else f"{made} attempts"
    raise PushError(
        f"push to {target} failed ({tries}): {last}. The report is kept: "
        "report.to_json() saves it, Report.from_json(...).push(url) retries later"
    )
