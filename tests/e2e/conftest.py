"""The pipeline under test, started once for tests/e2e/test_pipeline.py.

    workers (algalon-exporter on the fake NVML, compose/worker/collectors.csv)
      gpu-a: a1, a2 healthy H100 nodes + a training process serving job series,
             m1 an H100 node partitioned with MIG (testing/scenarios/h100-mig.json,
             exporter -d g+i: instance series beside the whole GPUs)
             + a process serving the series of jobs on one of its MIG devices
      gpu-b: b1 the faults of tests/e2e/scenarios/faults.json, b2 NVML re-initialisation hangs
             after 3 s, b3 reboots with one GPU fewer, one dead target
      gpu-c: a3, added by a new target file while everything runs
    -> vmagent   (compose/host: scrape.yml, targets written by setup.sh --add-worker)
    -> victoria-metrics (compose/host flags)  <- vmalert (compose/host/vmalert/rules.yml)
                                                  -> Alertmanager (compose/host/alertmanager)
    -> vmagent-0 / vmagent-1 (compose/cluster shards) -> a second victoria-metrics

Everything listens on 127.0.0.1, on ports picked free at start; logs stay in
target/e2e/ for a failed run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from e2e_stack import (
    COMPOSE,
    ROOT,
    VM,
    Processes,
    Rewrite,
    free_ports,
    fresh_dir,
    healthy_scenario,
    http_get,
    service_env,
    service_flags,
    wait_until,
)

HOST_COMPOSE = COMPOSE / "host/docker-compose.yml"
CLUSTER_COMPOSE = COMPOSE / "cluster/docker-compose.yml"
COLLECTORS = COMPOSE / "worker/collectors.csv"
FAULTS = Path(__file__).parent / "scenarios/faults.json"
MIG_SCENARIO = ROOT / "testing/scenarios/h100-mig.json"
# The MIG device the MIG job source runs on: GPU 0's 1g.10gb instance GI 7
# (vllm in it, GPM), there throughout the scenario (its repartition at
# t = 30 s leaves GPU 0 alone).
MIG_JOB_DEVICE = "MIG-4b1e7c20-0a5d-5f3e-9c61-7d2a8e0b3c01"

# Flags the test adds to the compose stack's own, only to be fast:
#   victoria-metrics -search.latencyOffset=1s: the default (30 s) keeps the
#     newest 30 s out of query results, which is right in production and
#     would only make this test wait.
#   vmalert -evaluationInterval=2s (compose: 30s): alerts turn pending within
#     seconds. The rules' `for:` durations are the production ones: alerts with
#     a `for:` are checked as pending, those without as firing.
#   vmagent-0/1 -remoteWrite.label=vmagent_shard=N: tells which shard wrote a
#     sample, to prove each target is scraped by exactly one.
#   alertmanager --cluster.listen-address=: one instance, so no gossip (and no
#     fixed port 9094 shared with other runs).
TEST_ONLY_FLAGS = {
    "victoriametrics": ["-search.latencyOffset=1s"],
    "vmalert": ["-evaluationInterval=2s"],
    "alertmanager": ["--cluster.listen-address="],
}


def _binary(env: str, default: Path) -> str:
    path = Path(os.environ.get(env, default))
    if not path.exists():
        pytest.fail(
            f"{path} does not exist: run scripts/e2e-pipeline.sh (it builds it), or set {env}"
        )
    return str(path)


@dataclass
class Exporter:
    name: str
    port: int
    cluster: str
    gpus: int

    @property
    def instance(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class Stack:
    work: Path
    procs: Processes
    vm: VM
    vm_shards: VM
    vm_url: str
    vmalert_url: str
    vmagent_url: str
    shard_urls: list[str]
    targets: Path
    exporter_bin: str
    nvml_lib: str
    alertmanager_url: str
    exporters: dict[str, Exporter] = field(default_factory=dict)
    dead: str = ""
    job_instance: str = ""
    mig_job_instance: str = ""
    spare_port: int = 0
    started: float = field(default_factory=time.monotonic)

    def start_exporter(
        self,
        name: str,
        port: int,
        cluster: str,
        scenario: Path,
        gpus: int,
        args: tuple[str, ...] = (),
    ) -> Exporter:
        self.procs.start(
            name,
            [
                self.exporter_bin,
                "--nvml-lib",
                self.nvml_lib,
                "-a",
                f"127.0.0.1:{port}",
                "-c",
                "1000",
                "--processes",
                "-f",
                str(COLLECTORS),
                *args,
            ],
            env={
                "ALGALON_FAKE_NVML_SCENARIO": str(scenario),
                "ALGALON_LOG_FORMAT": "text",
            },
        )
        exp = Exporter(name, port, cluster, gpus)
        self.exporters[name] = exp
        return exp

    def add_worker(self, instance: str, cluster: str) -> None:
        """The operator's way: ./setup.sh --add-worker IP:PORT --cluster NAME."""
        import subprocess

        subprocess.run(
            [str(ROOT / "setup.sh"), "--add-worker", instance, "--cluster", cluster],
            check=True,
            env={**os.environ, "ALGALON_TARGETS_DIR": str(self.targets)},
            capture_output=True,
            timeout=30,
        )

    def alerts(self) -> list[dict]:
        status, body = http_get(f"{self.vmalert_url}/api/v1/alerts")
        assert status == 200, body[:300]
        return json.loads(body)["data"]["alerts"]

    def notified(self) -> list[dict]:
        """The alerts Alertmanager holds, with their status (inhibitedBy)."""
        status, body = http_get(f"{self.alertmanager_url}/api/v2/alerts")
        assert status == 200, body[:300]
        return json.loads(body)


def alertmanager_binary() -> str:
    """Upstream calls it alertmanager, Debian prometheus-alertmanager."""
    for name in ("alertmanager", "prometheus-alertmanager"):
        if path := shutil.which(name):
            return path
    pytest.fail("alertmanager is not installed: run scripts/install-deps.sh")


def reboot_with_a_gpu_lost(st: Stack, work: Path) -> None:
    """b3 comes back from a reboot with 3 of its 4 GPUs: once vmalert has
    recorded 4, restart its exporter on a 3-GPU node (AlgalonGpuCountDropped)."""
    b3 = st.exporters["b3"]
    wait_until(
        "vmalert to record b3's 4 GPUs",
        lambda: st.vm.scalar(f'algalon:gpus:count{{instance="{b3.instance}"}}') == 4,
        45,
        1,
        st.procs.check_alive,
    )
    st.procs.stop("b3")
    three = healthy_scenario(work / "three.json", 3)
    st.start_exporter("b3", b3.port, b3.cluster, three, 3)


def b3_serves_3_gpus(st: Stack) -> bool:
    b3 = st.exporters["b3"]
    return st.vm.scalar(f'count(algalon_gpu_up{{instance="{b3.instance}"}})') == 3


def _interrupt(_signum, _frame):
    # SIGTERM (scripts/e2e-pipeline.sh's time limit) ends the run like
    # Ctrl-C, so the fixture's finally stops every process it started.
    raise KeyboardInterrupt


@pytest.fixture(scope="session")
def stack():
    signal.signal(signal.SIGTERM, _interrupt)
    exporter_bin = _binary("ALGALON_EXPORTER", ROOT / "target/debug/algalon-exporter")
    nvml_lib = _binary(
        "ALGALON_TEST_NVML_LIB", ROOT / "target/fake-nvml/libnvidia-ml.so.1"
    )
    work = fresh_dir(ROOT / "target/e2e/run")
    logs = fresh_dir(work / "logs")
    targets = fresh_dir(work / "targets")
    (targets / "jobs").mkdir()
    procs = Processes(logs)
    (
        vm_port,
        vm2_port,
        agent_port,
        shard0_port,
        shard1_port,
        alert_port,
        am_port,
        job_port,
        mig_job_port,
        *exp_ports,
    ) = free_ports(17)
    st = Stack(
        work=work,
        procs=procs,
        vm=VM(f"http://127.0.0.1:{vm_port}"),
        vm_shards=VM(f"http://127.0.0.1:{vm2_port}"),
        vm_url=f"http://127.0.0.1:{vm_port}",
        vmalert_url=f"http://127.0.0.1:{alert_port}",
        vmagent_url=f"http://127.0.0.1:{agent_port}",
        shard_urls=[
            f"http://127.0.0.1:{shard0_port}",
            f"http://127.0.0.1:{shard1_port}",
        ],
        targets=targets,
        exporter_bin=exporter_bin,
        nvml_lib=nvml_lib,
        alertmanager_url=f"http://127.0.0.1:{am_port}",
    )
    try:
        # Workers first: the stuck-NVML one must be stale for a minute before
        # the alert checks run.
        healthy = healthy_scenario(work / "healthy.json", 4)
        stuck = healthy_scenario(work / "stuck.json", 4, latency_from_s=3)
        st.start_exporter("b2", exp_ports[3], "gpu-b", stuck, 4)
        st.start_exporter("a1", exp_ports[0], "gpu-a", healthy, 4)
        st.start_exporter("a2", exp_ports[1], "gpu-a", healthy, 4)
        st.start_exporter("b1", exp_ports[2], "gpu-b", FAULTS, 8)
        st.start_exporter("b3", exp_ports[6], "gpu-b", healthy, 4)
        # MIG instances as dcgm-exporter's -d g+i writes them.
        st.start_exporter("m1", exp_ports[7], "gpu-a", MIG_SCENARIO, 8, ("-d", "g+i"))
        st.dead = f"127.0.0.1:{exp_ports[4]}"  # nothing listens there
        st.spare_port = exp_ports[5]  # a3, added later

        # The scrape config with the one container path made local.
        scrape_src = (COMPOSE / "host/vmagent/scrape.yml").read_text()
        assert "/etc/vmagent/targets/" in scrape_src
        scrape = work / "scrape.yml"
        scrape.write_text(scrape_src.replace("/etc/vmagent/targets/", f"{targets}/"))

        vm_flags = (
            service_flags(
                HOST_COMPOSE,
                "victoriametrics",
                Rewrite({}, f"127.0.0.1:{vm_port}", work),
            )
            + TEST_ONLY_FLAGS["victoriametrics"]
        )
        procs.start("victoria-metrics", ["victoria-metrics", *vm_flags])
        vm2_flags = [
            f.replace(
                str(work / "victoriametrics-vmdata"), str(work / "vm-shards-data")
            )
            for f in service_flags(
                HOST_COMPOSE,
                "victoriametrics",
                Rewrite({}, f"127.0.0.1:{vm2_port}", work),
            )
        ] + TEST_ONLY_FLAGS["victoriametrics"]
        procs.start("victoria-metrics-shards", ["victoria-metrics", *vm2_flags])
        # As compose's `depends_on: condition: service_healthy`: vmalert
        # restores alert state from VictoriaMetrics when it starts.
        for url in (st.vm_url, st.vm_shards.base):
            wait_until(
                f"{url}/health",
                lambda u=url: http_get(f"{u}/health")[0] == 200,
                30,
                on_wait=procs.check_alive,
            )

        hosts = {
            "victoriametrics:8428": f"127.0.0.1:{vm_port}",
            "alertmanager:9093": f"127.0.0.1:{am_port}",
        }
        am_flags = service_flags(
            HOST_COMPOSE,
            "alertmanager",
            Rewrite({}, f"127.0.0.1:{am_port}", work),
        )
        procs.start(
            "alertmanager",
            [
                alertmanager_binary(),
                *am_flags,
                f"--web.listen-address=127.0.0.1:{am_port}",
                *TEST_ONLY_FLAGS["alertmanager"],
            ],
        )
        files = {"/etc/vmagent/scrape.yml": scrape}
        agent_flags = service_flags(
            HOST_COMPOSE,
            "vmagent",
            Rewrite(hosts, f"127.0.0.1:{agent_port}", work, files),
        )
        procs.start(
            "vmagent",
            ["vmagent", *agent_flags],
            env=service_env(HOST_COMPOSE, "vmagent"),
        )
        # vminsert stands in as a single-node VictoriaMetrics (Debian ships no
        # cluster binaries): its tenant path maps to the single node's root.
        cluster_hosts = {"vminsert:8480/insert/0/prometheus": f"127.0.0.1:{vm2_port}"}
        for n, port in enumerate((shard0_port, shard1_port)):
            flags = service_flags(
                CLUSTER_COMPOSE,
                f"vmagent-{n}",
                Rewrite(cluster_hosts, f"127.0.0.1:{port}", work, files),
            )
            assert f"-promscrape.cluster.memberNum={n}" in flags
            procs.start(
                f"vmagent-{n}",
                ["vmagent", *flags, f"-remoteWrite.label=vmagent_shard={n}"],
                env=service_env(CLUSTER_COMPOSE, f"vmagent-{n}"),
            )
        alert_flags = service_flags(
            HOST_COMPOSE, "vmalert", Rewrite(hosts, f"127.0.0.1:{alert_port}", work)
        )
        procs.start("vmalert", ["vmalert", *alert_flags, *TEST_ONLY_FLAGS["vmalert"]])

        wait_until(
            "alertmanager ready",
            lambda: http_get(f"{st.alertmanager_url}/-/ready")[0] == 200,
            30,
            on_wait=procs.check_alive,
        )
        for url in (st.vmagent_url, *st.shard_urls, st.vmalert_url):
            wait_until(
                f"{url}/health",
                lambda u=url: http_get(f"{u}/health")[0] == 200,
                30,
                on_wait=procs.check_alive,
            )
        for exp in st.exporters.values():
            wait_until(
                f"{exp.name} /health",
                lambda e=exp: http_get(f"http://{e.instance}/health")[0] in (200, 503),
                30,
                on_wait=procs.check_alive,
            )

        # A training process serving job series, and pushing one report; a
        # second one pinned to a MIG device, as Kubernetes and Slurm pin it.
        job_source = [
            "python3",
            str(Path(__file__).parent / "job_source.py"),
            "--nvml-lib",
            nvml_lib,
        ]
        procs.start(
            "job-source",
            [*job_source, "--port", str(job_port), "--push", st.vm_url],
            env={"ALGALON_FAKE_NVML_SCENARIO": str(healthy)},
        )
        procs.start(
            "job-source-mig",
            [
                *job_source,
                "--port",
                str(mig_job_port),
                "--mig-scenario",
                str(work / "mig-job.json"),
            ],
            env={
                "ALGALON_FAKE_NVML_SCENARIO": str(MIG_SCENARIO),
                "CUDA_VISIBLE_DEVICES": MIG_JOB_DEVICE,
            },
        )
        st.job_instance = f"127.0.0.1:{job_port}"
        st.mig_job_instance = f"127.0.0.1:{mig_job_port}"
        for name in ("job-source", "job-source-mig"):
            wait_until(
                f"{name} to serve",
                lambda n=name: "job_source: ready" in procs.log_tail(n, 50),
                30,
                on_wait=procs.check_alive,
            )

        # Targets, the operator's way.
        for exp in st.exporters.values():
            st.add_worker(exp.instance, exp.cluster)
        st.add_worker(st.dead, "gpu-b")
        (targets / "jobs/gpu-a.yml").write_text(
            "- labels:\n    cluster: gpu-a\n  targets:\n"
            f"    - {st.job_instance}\n    - {st.mig_job_instance}\n"
        )

        # While every target is scraped a few times, b3 reboots.
        reboot_with_a_gpu_lost(st, work)

        # Three scrapes of every target: rate() needs two samples inside a
        # range query's last step.
        live = [e.instance for e in st.exporters.values()] + [
            st.job_instance,
            st.mig_job_instance,
        ]

        def scraped_thrice() -> bool:
            got = {
                r["metric"]["instance"]: float(r["value"][1])
                for r in st.vm.query("count_over_time(up[2m])")
                if r["metric"].get("instance") in (*live, st.dead)
            }
            return len(got) == len(live) + 1 and min(got.values()) >= 3

        wait_until(
            "three scrapes of every target in VictoriaMetrics",
            scraped_thrice,
            75,
            1,
            procs.check_alive,
        )
        # b3's fourth GPU has left VictoriaMetrics: the node rebooted.
        wait_until("b3 back with 3 GPUs", lambda: b3_serves_3_gpus(st), 45, 1)
        yield st
    finally:
        procs.stop_all()
