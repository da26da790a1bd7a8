"""Monitor.serve(): /metrics read by prometheus_client's parser and promtool."""

from __future__ import annotations

import errno
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import algalon
import pytest
from conftest import H100, T4
from prometheus_client.parser import text_string_to_metric_families


def scrape(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.headers["Content-Type"], r.read().decode()


def test_served_metrics_parse_and_carry_identity(
    mon: algalon.Monitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "4711")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "4")
    server = mon.serve(port=0)
    assert server.addr == "127.0.0.1" and server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}/metrics"
    with mon.job("finetune", labels={"team": "nlp"}) as job:
        time.sleep(0.3)
        job.count(samples=32)
    running = mon.begin_window("eval")
    time.sleep(0.2)
    content_type, text = scrape(server.url)
    assert content_type.startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(text)}

    info = [s.labels for s in families["algalon_job_info"].samples]
    done = next(i for i in info if i["job_name"] == "finetune")
    assert done["job_id"] == str(job.id)
    assert (
        done["slurm_job_id"] == "4711"
        and done["rank"] == "2"
        and done["world_size"] == "4"
    )
    assert done["team"] == "nlp"

    energy = {
        (s.labels["job_id"], s.labels["UUID"]): s
        for s in families["algalon_job_gpu_energy_joules"].samples
    }
    h100 = energy[(str(job.id), H100)]
    assert h100.labels["gpu"] == "0" and h100.labels["source"] == "counter"
    assert h100.value == pytest.approx(job.report.gpus[0].energy_j)
    assert energy[(str(job.id), T4)].labels["source"] == "integrated"

    running_flag = {
        s.labels["job_id"]: s.value for s in families["algalon_job_running"].samples
    }
    assert running_flag == {str(job.id): 0, str(running.id): 1}
    for name in (
        "algalon_job_gpu_utilization_ratio",
        "algalon_job_gpu_memory_peak_bytes",
        "algalon_job_duration_seconds",
        "algalon_job_progress",
    ):
        assert name in families, name
    util = {
        s.labels["UUID"]: s.value
        for s in families["algalon_job_gpu_utilization_ratio"].samples
        if s.labels["job_id"] == str(job.id)
    }
    assert util == {H100: pytest.approx(0.85), T4: pytest.approx(0.10)}

    if shutil.which("promtool"):
        check = subprocess.run(
            ["promtool", "check", "metrics"],
            check=False,
            input=text,
            capture_output=True,
            text=True,
            timeout=30,
        )
        # The one finding kept on purpose, as in the exporter: algalon_gpu_up
        # carries dcgm-exporter's camelCase modelName label for dashboards.
        findings = [
            line
            for line in (check.stdout + check.stderr).splitlines()
            if line.strip()
            and not line.endswith(
                "label names should be written in 'snake_case' not 'camelCase'"
            )
        ]
        assert check.returncode in (0, 3) and not findings, check.stdout + check.stderr
    running.end()


def test_other_paths_and_close(mon: algalon.Monitor) -> None:
    server = mon.serve(port=0)
    base = f"http://127.0.0.1:{server.port}"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(base + "/nope", timeout=5)
    assert err.value.code == 404
    _, index = scrape(base + "/")
    assert "/metrics" in index
    # Before the first job: what runs and whether its GPUs answer.
    _, before = scrape(server.url)
    families = {f.name: f for f in text_string_to_metric_families(before)}
    (build,) = families["algalon_build_info"].samples
    assert build.labels["version"] == algalon.__version__
    assert build.labels["driver_version"]
    up = {s.labels["UUID"]: s for s in families["algalon_gpu_up"].samples}
    assert {u: s.value for u, s in up.items()} == {H100: 1, T4: 1}
    assert up[H100].labels["Hostname"] == mon.hostname
    assert not any(name.startswith("algalon_job") for name in families)
    server.close()
    server.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


def test_port_in_use_is_an_os_error(mon: algalon.Monitor) -> None:
    server = mon.serve(port=0)
    with pytest.raises(OSError, match=f"127.0.0.1:{server.port}"):
        mon.serve(port=server.port)
    # An algalon error that says what to do, and still an OSError with its errno.
    with pytest.raises(algalon.ServeError) as err:
        mon.serve(port=server.port)
    assert isinstance(err.value, OSError) and isinstance(
        err.value, algalon.AlgalonError
    )
    assert err.value.errno == errno.EADDRINUSE
    message = str(err.value)
    assert "already in use" in message and "port=0" in message, message
    with pytest.raises(OSError, match="not an IP address"):
        mon.serve(port=0, addr="localhost:1")


def test_closing_the_monitor_stops_its_servers() -> None:
    mon = algalon.Monitor(interval=0.05)
    server = mon.serve(port=0)
    scrape(server.url)
    mon.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
