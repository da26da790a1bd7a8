"""Static checks of compose/: schemas, configs and rules through the real
tools (check-jsonschema, vmagent -dryRun, vmalert -dryRun, promtool,
shellcheck), and the dashboards' structure. Needs no running process."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import promql_parser
import pytest
import yaml
from e2e_stack import (
    COMPOSE,
    ROOT,
    docker_compose_config,
    interpolate,
    load_compose,
    read_env_file,
    service_env,
)

SCHEMA = COMPOSE / "schema/compose-spec.json"
COMPOSE_FILES = sorted(COMPOSE.glob("*/docker-compose.yml"))
DASHBOARD_DIR = COMPOSE / "host/grafana/dashboards"
DASHBOARDS = sorted(DASHBOARD_DIR.glob("*.json"))
RULES = COMPOSE / "host/vmalert/rules.yml"
SCRAPE = COMPOSE / "host/vmagent/scrape.yml"
DCGM_DASHBOARD_SHA256 = (
    "7c2172e582524efb70d9f585502366f7fec22b2464c3b89f75418ca648353e71"
)


def tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} is not installed: run scripts/install-deps.sh")
    return path


def run(
    *argv: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def validate(files: list[Path]) -> subprocess.CompletedProcess[str]:
    return run(tool("check-jsonschema"), "--schemafile", str(SCHEMA), *map(str, files))


def test_expected_compose_files_exist():
    assert {p.parent.name for p in COMPOSE_FILES} == {
        "host",
        "worker",
        "single-node",
        "cluster",
        "ha",
    }


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.parent.name)
def test_compose_file_matches_compose_spec(path):
    r = validate([path])
    assert r.returncode == 0, r.stdout + r.stderr


def test_schema_rejects_a_broken_compose_file(tmp_path):
    """The vendored schema is strict: a misspelt key fails."""
    bad = tmp_path / "docker-compose.yml"
    bad.write_text("services:\n  x:\n    imagee: busybox\n    restart: sometimes\n")
    r = validate([bad])
    assert r.returncode != 0
    assert "imagee" in r.stdout + r.stderr or "restart" in r.stdout + r.stderr


def test_vendored_schema_is_the_recorded_one():
    readme = (COMPOSE / "schema/README.md").read_text()
    digest = hashlib.sha256(SCHEMA.read_bytes()).hexdigest()
    assert digest in readme, (
        "compose-spec.json changed: record its source and sha256 in compose/schema/README.md"
    )


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.parent.name)
def test_compose_variables_are_documented(path):
    """Every ${VAR} without a default is in the directory's .env.example."""
    text = path.read_text()
    env_example = path.parent / ".env.example"
    declared = read_env_file(env_example) if env_example.exists() else {}
    for m in re.finditer(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?])?", text):
        name, op = m.groups()
        if op not in (":-", "-"):
            assert name in declared, (
                f"{path}: ${{{name}}} has no default and is not in {env_example}"
            )


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.parent.name)
def test_bind_mounts_and_build_contexts_exist(path):
    doc = load_compose(path)
    for name, svc in doc.get("services", {}).items():
        for volume in svc.get("volumes", []):
            src = volume.split(":")[0]
            if src.startswith("."):
                assert (path.parent / src).exists(), (
                    f"{path}: {name} mounts missing {src}"
                )
        build = svc.get("build")
        if build:
            ctx = path.parent / build["context"]
            assert (ctx / build["dockerfile"]).is_file(), (
                f"{path}: {name} builds a missing Dockerfile"
            )
    for inc in doc.get("include", []):
        assert (path.parent / inc["path"]).is_file()


def test_grafana_password_comes_from_env_never_hard_coded():
    for path in (
        COMPOSE / "host/docker-compose.yml",
        COMPOSE / "cluster/docker-compose.yml",
        COMPOSE / "ha/docker-compose.yml",
    ):
        env = load_compose(path)["services"]["grafana"]["environment"]
        assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith(
            "${GRAFANA_ADMIN_PASSWORD:?"
        )
        assert (
            read_env_file(path.parent / ".env.example")["GRAFANA_ADMIN_PASSWORD"] == ""
        )


def test_host_publishes_only_grafana_and_victoriametrics():
    doc = load_compose(COMPOSE / "host/docker-compose.yml")
    published = {name for name, svc in doc["services"].items() if svc.get("ports")}
    assert published == {"grafana", "victoriametrics"}
    for name, svc in doc["services"].items():
        assert svc.get("networks") == ["monitoring"], (
            f"{name} is not on the private network"
        )
    vm = doc["services"]["victoriametrics"]
    assert "-retentionPeriod=${VM_RETENTION:-90d}" in vm["command"]
    # 5-second data reaches dashboards within two intervals, not 30 s later.
    assert "-search.latencyOffset=${VM_LATENCY_OFFSET:-5s}" in vm["command"]
    assert any(v.endswith(":/storage") and not v.startswith(".") for v in vm["volumes"])


def published(path: Path, service: str, env: dict[str, str]) -> list[str]:
    """The service's ports as compose interpolates them with `env`."""
    svc = load_compose(path)["services"][service]
    return [interpolate(p, env) for p in svc.get("ports", [])]


def test_victoriametrics_is_published_on_loopback_only_by_default():
    """Its API has no authentication: 127.0.0.1 unless VM_BIND says otherwise,
    with the .env setup.sh writes (from .env.example) and without one."""
    host = COMPOSE / "host/docker-compose.yml"
    example = read_env_file(COMPOSE / "host/.env.example")
    for env in (example, {}):
        assert published(host, "victoriametrics", env) == ["127.0.0.1:8428:8428"]
        assert published(host, "grafana", env) == ["0.0.0.0:3000:3000"]
    assert published(host, "victoriametrics", {**example, "VM_BIND": "0.0.0.0"}) == [
        "0.0.0.0:8428:8428"
    ]
    # The switch is documented where people set it, and the safe ways in.
    text = (COMPOSE / "host/.env.example").read_text()
    assert "VM_BIND=0.0.0.0" in text and "ssh -L 8428:127.0.0.1:8428" in text
    readme = (COMPOSE / "README.md").read_text()
    assert "## Reaching VictoriaMetrics" in readme
    assert "ssh -L 8428:127.0.0.1:8428" in readme and "vmauth" in readme


def compose_copy(tmp: Path) -> Path:
    """compose/ with the .env files setup.sh would write (from .env.example)."""
    dst = tmp / "compose"
    shutil.copytree(COMPOSE, dst, ignore=shutil.ignore_patterns(".env"))
    for part in ("host", "worker"):
        text = (dst / part / ".env.example").read_text()
        text = text.replace("GRAFANA_ADMIN_PASSWORD=\n", "GRAFANA_ADMIN_PASSWORD=x\n")
        (dst / part / ".env").write_text(text)
    return dst


@pytest.mark.parametrize("part", ["host", "single-node"])
def test_compose_renders_victoriametrics_on_loopback(tmp_path, part):
    """What `docker compose config` hands the engine: VictoriaMetrics on
    127.0.0.1, Grafana on every interface."""
    copy = compose_copy(tmp_path)
    model = docker_compose_config([copy / part / "docker-compose.yml"], tmp_path)
    if model is None:
        pytest.skip("Docker Compose v2 is not installed (docker compose config)")
    services = model["services"]
    vm = services["victoriametrics"]["ports"]
    assert [(p["host_ip"], p["published"], p["target"]) for p in vm] == [
        ("127.0.0.1", "8428", 8428)
    ]
    grafana = services["grafana"]["ports"]
    assert [(p["host_ip"], p["target"]) for p in grafana] == [("0.0.0.0", 3000)]


def test_vmagent_reads_target_files_often_enough():
    """file_sd on compose/host/targets/*.yml, re-read within 30 s, host and cluster alike."""
    scrape = yaml.safe_load(SCRAPE.read_text())
    files = [
        f
        for job in scrape["scrape_configs"]
        for sd in job.get("file_sd_configs", [])
        for f in sd["files"]
    ]
    assert "/etc/vmagent/targets/*.yml" in files
    for path, services in (
        (COMPOSE / "host/docker-compose.yml", ["vmagent"]),
        (COMPOSE / "cluster/docker-compose.yml", ["vmagent-0", "vmagent-1"]),
    ):
        doc = load_compose(path)
        for name in services:
            svc = doc["services"][name]
            assert any(
                v.split(":")[1] == "/etc/vmagent/targets" for v in svc["volumes"]
            )
            interval = next(
                a
                for a in svc["command"]
                if a.startswith("-promscrape.fileSDCheckInterval=")
            )
            assert int(interval.split("=")[1].rstrip("s")) <= 30


def test_worker_has_gpus_host_pid_port_and_healthcheck():
    svc = load_compose(COMPOSE / "worker/docker-compose.yml")["services"][
        "algalon-exporter"
    ]
    devices = svc["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert svc["pid"] == "host"
    assert svc["ports"][0].endswith(":9400")
    assert svc["restart"] == "unless-stopped"
    assert "--healthcheck" in svc["healthcheck"]["test"]
    assert svc["build"]["dockerfile"] == "compose/worker/Dockerfile"


def test_cluster_shards_scrapers_and_replicates_storage():
    doc = load_compose(COMPOSE / "cluster/docker-compose.yml")
    services = doc["services"]
    assert {n for n in services if n.startswith("vmstorage")} == {
        "vmstorage-1",
        "vmstorage-2",
    }
    assert "-replicationFactor=2" in services["vminsert"]["command"]
    assert "-dedup.minScrapeInterval=1ms" in services["vmselect"]["command"]
    members = []
    for n in (0, 1):
        cmd = services[f"vmagent-{n}"]["command"]
        assert "-promscrape.cluster.membersCount=2" in cmd
        members.append(
            next(a for a in cmd if a.startswith("-promscrape.cluster.memberNum="))
        )
    assert members == [
        "-promscrape.cluster.memberNum=0",
        "-promscrape.cluster.memberNum=1",
    ]


VMAGENT_ENV = service_env(COMPOSE / "host/docker-compose.yml", "vmagent")


def test_vmagent_dry_run_accepts_the_scrape_config():
    r = run(tool("vmagent"), "-dryRun", f"-promscrape.config={SCRAPE}", env=VMAGENT_ENV)
    assert r.returncode == 0, r.stderr[-2000:]


def test_vmagent_dry_run_rejects_a_bad_config(tmp_path):
    bad = tmp_path / "scrape.yml"
    bad.write_text(SCRAPE.read_text().replace("scrape_interval:", "scrape_intervall:"))
    r = run(tool("vmagent"), "-dryRun", f"-promscrape.config={bad}", env=VMAGENT_ENV)
    assert r.returncode != 0
    assert "scrape_intervall" in r.stderr


def test_vmagent_refuses_to_start_without_the_scrape_interval():
    """The interval comes from the environment compose gives vmagent: unset,
    vmagent stops at once instead of scraping at some other rate."""
    env = {k: v for k, v in os.environ.items() if k != "ALGALON_SCRAPE_INTERVAL"}
    r = subprocess.run(
        [tool("vmagent"), "-dryRun", f"-promscrape.config={SCRAPE}"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert r.returncode != 0
    assert "ALGALON_SCRAPE_INTERVAL" in r.stderr


SCRAPE_INTERVAL_USERS = [
    ("host", "vmagent"),
    ("host", "grafana"),
    ("cluster", "vmagent-0"),
    ("cluster", "vmagent-1"),
    ("cluster", "grafana"),
]


def scrape_interval_seconds() -> float:
    """The default scrape interval, as compose hands it to vmagent."""
    return seconds(VMAGENT_ENV["ALGALON_SCRAPE_INTERVAL"])


def test_scrape_interval_is_5s_by_default_and_set_in_env():
    """vmagent scrapes and Grafana computes $__rate_interval from one
    setting, SCRAPE_INTERVAL in .env (5 s, the exporter's sampling period)."""
    scrape = yaml.safe_load(SCRAPE.read_text())
    assert scrape["global"]["scrape_interval"] == "%{ALGALON_SCRAPE_INTERVAL}"
    assert "scrape_timeout" not in scrape["global"]  # 10 s, capped at the interval
    for job in scrape["scrape_configs"]:
        assert "scrape_interval" not in job, job["job_name"]
    datasource = yaml.safe_load(
        (
            COMPOSE / "host/grafana/provisioning/datasources/victoriametrics.yml"
        ).read_text()
    )["datasources"][0]
    assert datasource["jsonData"]["timeInterval"] == "${ALGALON_SCRAPE_INTERVAL}"
    for part, service in SCRAPE_INTERVAL_USERS:
        path = COMPOSE / part / "docker-compose.yml"
        assert read_env_file(path.parent / ".env.example")["SCRAPE_INTERVAL"] == "5s"
        assert service_env(path, service)["ALGALON_SCRAPE_INTERVAL"] == "5s", service
        raw = load_compose(path)["services"][service]["environment"]
        value = raw["ALGALON_SCRAPE_INTERVAL"]
        assert interpolate(value, {}) == "5s"  # without an .env too
        assert interpolate(value, {"SCRAPE_INTERVAL": "15s"}) == "15s"


def seconds(duration: str) -> float:
    return promql_parser.parse_duration(duration).total_seconds()


# Grafana's own variables, each replaced by a window that names it.
GRAFANA_WINDOWS = {
    "__rate_interval": "1111111s",
    "__range": "2222222s",
    "__interval": "3333333s",
}
RANGE_FUNCTIONS = {"rate", "irate", "increase", "delta", "idelta", "deriv"}


def rate_windows(expr: str) -> list[tuple[str, str]]:
    """(function, window) of every rate()-like call of a PromQL expression,
    Grafana's variables named as such."""
    for name, marker in GRAFANA_WINDOWS.items():
        expr = re.sub(r"\$\{" + name + r"\}|\$" + name + r"\b", marker, expr)
    # Dashboard variables stand for label values.
    expr = re.sub(r"\$\{\w+(?::\w+)?\}|\$\w+", ".+", expr)
    names = {seconds(m): n for n, m in GRAFANA_WINDOWS.items()}
    found = []

    def visit(node) -> None:
        if isinstance(node, promql_parser.Call) and node.func.name in RANGE_FUNCTIONS:
            for arg in node.args:
                window = getattr(arg, "range", None)
                if window is not None:
                    s = window.total_seconds()
                    found.append((node.func.name, names.get(s, f"{s:g}s")))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def dashboard_exprs():
    for path in DASHBOARDS:
        doc = json.loads(path.read_text())
        for panel in all_panels(doc):
            for t in panel.get("targets", []):
                if t.get("expr"):
                    yield f"{path.name}: {panel['title']}", t["expr"]


def test_rate_windows_span_four_scrapes():
    """Every rate()/increase() of the dashboards and rules spans at least
    four scrapes: $__rate_interval (Grafana: max(4 x scrape interval,
    $__interval + scrape interval)), $__range, or a fixed window >= 4 x the
    default scrape interval. $__interval alone can hold a single sample."""
    minimum = 4 * scrape_interval_seconds()
    exprs = list(dashboard_exprs()) + [
        (f"rules.yml: {r.get('alert') or r.get('record')}", r["expr"])
        for g in yaml.safe_load(RULES.read_text())["groups"]
        for r in g["rules"]
    ]
    checked = 0
    for where, expr in exprs:
        for func, window in rate_windows(expr):
            checked += 1
            if window in ("__rate_interval", "__range"):
                continue
            assert window != "__interval", f"{where}: {func}() over $__interval"
            assert seconds(window) >= minimum, (
                f"{where}: {func}(…[{window}]) spans under 4 scrapes of "
                f"{scrape_interval_seconds():g} s: use $__rate_interval or >= {minimum:g}s"
            )
    assert checked >= 10


def test_rate_window_check_catches_short_windows():
    assert rate_windows('rate(x{a=~"$gpu"}[$__rate_interval])') == [
        ("rate", "__rate_interval")
    ]
    assert rate_windows("increase(x[$__interval])") == [("increase", "__interval")]
    assert rate_windows("sum(irate(x[15s])) / deriv(y[1m:5s])") == [
        ("irate", "15s"),
        ("deriv", "60s"),
    ]


def test_generated_dashboards_refresh_every_5_to_10_seconds():
    """A sample lands every 5 s. NVIDIA's dashboard is provisioned unchanged
    (refresh off, set in the UI)."""
    for path in DASHBOARDS:
        if path.name.startswith("algalon-"):
            assert json.loads(path.read_text())["refresh"] in ("5s", "10s"), path.name


def test_vmalert_dry_run_accepts_the_rules():
    r = run(tool("vmalert"), "-dryRun", f"-rule={RULES}")
    assert r.returncode == 0, r.stderr[-2000:]


def test_vmalert_dry_run_rejects_a_bad_expression(tmp_path):
    bad = tmp_path / "rules.yml"
    bad.write_text(
        RULES.read_text().replace(
            "expr: algalon_gpu_up == 0", "expr: algalon_gpu_up == == 0"
        )
    )
    assert run(tool("vmalert"), "-dryRun", f"-rule={bad}").returncode != 0


def test_promtool_checks_the_rules():
    r = run(tool("promtool"), "check", "rules", str(RULES))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


RULE_TESTS = sorted((Path(__file__).parent / "rules").glob("*.yml"))


def test_promtool_unit_tests_of_the_rules():
    """tests/e2e/rules/*.yml: every rule fires on its fault and stays silent
    on healthy input, evaluated by Prometheus' own engine."""
    assert RULE_TESTS
    r = run(tool("promtool"), "test", "rules", *map(str, RULE_TESTS))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("SUCCESS") == len(RULE_TESTS), r.stdout


def test_every_alert_has_a_promtool_test_that_raises_it():
    tested = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for t in case.get("alert_rule_test", []):
                if t.get("exp_alerts"):
                    tested.add(t["alertname"])
    doc = yaml.safe_load(RULES.read_text())
    alerts = {r["alert"] for g in doc["groups"] for r in g["rules"] if "alert" in r}
    assert alerts - tested == set(), (
        f"alerts no promtool test raises: {alerts - tested}"
    )


RUNBOOKS = COMPOSE / "RUNBOOKS.md"
RUNBOOK_URL = "https://github.com/algalon-gpu/algalon/blob/main/compose/RUNBOOKS.md"
DASHBOARD_LINK = re.compile(
    r"\{\{ \$externalURL \}\}/d/(?P<uid>[\w-]+)/[\w-]+\?(?P<query>.*)"
)


def alert_rules() -> list[tuple[str, dict]]:
    doc = yaml.safe_load(RULES.read_text())
    return [
        (group["name"], rule)
        for group in doc["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_rules_are_labelled_and_annotated():
    for _, rule in alert_rules():
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule[
            "alert"
        ]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], (
            rule["alert"]
        )


def test_xid_alerts_share_one_expression_and_split_the_xids():
    """The three XID alerts differ only in the XIDs they take: critical and
    application ones by name, warning for every other XID."""
    xid_filter = re.compile(
        r'(?P<head>.*)\band algalon_xid_errors_total\{xid(?P<op>=~|!~)"(?P<xids>[^"]*)"\}\s*',
        re.DOTALL,
    )
    parts = {}
    for _, rule in alert_rules():
        if rule["alert"].startswith("AlgalonGpuXid"):
            m = xid_filter.fullmatch(rule["expr"])
            assert m, rule["alert"]
            parts[rule["alert"]] = (" ".join(m["head"].split()), m["op"], m["xids"])
    assert set(parts) == {
        "AlgalonGpuXidCritical",
        "AlgalonGpuXidError",
        "AlgalonGpuXidApplication",
    }
    assert len({head for head, _, _ in parts.values()}) == 1
    critical = parts["AlgalonGpuXidCritical"]
    application = parts["AlgalonGpuXidApplication"]
    warning = parts["AlgalonGpuXidError"]
    assert critical[1] == application[1] == "=~" and warning[1] == "!~"
    assert set(application[2].split("|")) == {"13", "31", "43", "45"}
    assert "79" in critical[2].split("|")
    assert not set(critical[2].split("|")) & set(application[2].split("|"))
    assert set(warning[2].split("|")) == set(critical[2].split("|")) | set(
        application[2].split("|")
    )


def test_compose_readme_lists_every_alert_with_its_severity():
    table = re.findall(
        r"^\| `(Algalon\w+)` \| (\w+) \|",
        (COMPOSE / "README.md").read_text(),
        re.MULTILINE,
    )
    assert table == [
        (rule["alert"], rule["labels"]["severity"]) for _, rule in alert_rules()
    ]


def test_every_alert_links_its_runbook_section():
    assert (
        tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"][
            "repository"
        ]
        == RUNBOOK_URL.split("/blob/")[0]
    )
    text = RUNBOOKS.read_text()
    anchors = {github_anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}
    for _, rule in alert_rules():
        name = rule["alert"]
        assert f"\n## {name}\n" in text, f"{RUNBOOKS.name} has no section {name}"
        url = rule["annotations"]["runbook_url"]
        assert url == f"{RUNBOOK_URL}#{github_anchor(name)}", (name, url)
        assert url.split("#")[1] in anchors


def test_every_alert_links_the_fleet_dashboard_at_its_gpu():
    fleet = json.loads((DASHBOARD_DIR / "algalon-fleet.json").read_text())
    variables = {v["name"] for v in fleet["templating"]["list"]}
    # A node alert whose series may name a GPU (AlgalonNvmlErrors) opens the
    # dashboard at that GPU when it does.
    optional_gpu = "{{ with $labels.gpu }}&var-gpu={{ . | urlquery }}{{ end }}"
    for group, rule in alert_rules():
        link = rule["annotations"]["dashboard"]
        if group != "algalon-gpu" and link.endswith(optional_gpu):
            link = link.removesuffix(optional_gpu)
        m = DASHBOARD_LINK.fullmatch(link)
        assert m, f"{rule['alert']}: {link!r} is not a Grafana dashboard link"
        assert m["uid"] == fleet["uid"]
        params = dict(p.split("=", 1) for p in m["query"].split("&"))
        want = ["cluster", "instance"] + (["gpu"] if group == "algalon-gpu" else [])
        assert list(params) == [f"var-{v}" for v in want], (rule["alert"], params)
        for var in want:
            assert var in variables
            assert params[f"var-{var}"] == f"{{{{ $labels.{var} | urlquery }}}}"


def test_shellcheck():
    r = run(
        tool("shellcheck"),
        "setup.sh",
        "scripts/e2e-pipeline.sh",
        "scripts/e2e-containers.sh",
        "scripts/install-deps.sh",
        "testing/containers/build-standins.sh",
    )
    assert r.returncode == 0, r.stdout + r.stderr


def all_panels(doc: dict):
    for panel in doc.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_is_valid_grafana_json(path):
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc.get("title") and doc.get("uid") and isinstance(doc.get("panels"), list)
    ids = [p["id"] for p in all_panels(doc)]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {path.name}"
    variables = doc["templating"]["list"]
    ds_vars = [
        v["name"]
        for v in variables
        if v["type"] == "datasource" and v["query"] == "prometheus"
    ]
    assert ds_vars, f"{path.name} has no Prometheus datasource variable"
    refs = {f"${ds_vars[0]}", f"${{{ds_vars[0]}}}"}
    for panel in all_panels(doc):
        if panel["type"] == "row":
            continue
        ds = panel.get("datasource")
        uid = ds.get("uid") if isinstance(ds, dict) else ds
        assert uid in refs, (
            f"{path.name}: panel {panel['title']!r} does not use the datasource variable"
        )
        assert panel.get("targets"), (
            f"{path.name}: panel {panel['title']!r} has no query"
        )
        refids = [t.get("refId") for t in panel["targets"]]
        assert len(refids) == len(set(refids)), (
            f"{path.name}: {panel['title']!r} repeats a refId"
        )


def test_dashboard_uids_and_titles():
    docs = {p.name: json.loads(p.read_text()) for p in DASHBOARDS}
    assert len({d["uid"] for d in docs.values()}) == len(docs)
    titles = {d["title"] for d in docs.values()}
    assert {
        "Algalon — GPU fleet",
        "Algalon — jobs",
        "NVIDIA DCGM Exporter Dashboard",
    } <= titles
    fleet = docs["algalon-fleet.json"]
    names = [v["name"] for v in fleet["templating"]["list"]]
    assert names == ["datasource", "cluster", "instance", "gpu"]
    ds = fleet["templating"]["list"][0]["current"]["value"]
    provisioned = yaml.safe_load(
        (
            COMPOSE / "host/grafana/provisioning/datasources/victoriametrics.yml"
        ).read_text()
    )
    vm = provisioned["datasources"][0]
    assert (vm["uid"], vm["type"]) == (ds, "prometheus")


def test_nvidia_dashboard_is_provisioned_unchanged():
    ours = (DASHBOARD_DIR / "dcgm-exporter-dashboard.json").read_bytes()
    assert hashlib.sha256(ours).hexdigest() == DCGM_DASHBOARD_SHA256
    shared = ROOT.parent / "shared/compat/dcgm-exporter-dashboard.json"
    if shared.exists():
        assert ours == shared.read_bytes()


def test_generated_dashboards_are_up_to_date():
    r = run("python3", str(COMPOSE / "host/grafana/build_dashboards.py"), "--check")
    assert r.returncode == 0, r.stderr


def test_grafana_gets_the_datasource_url_it_provisions():
    host = COMPOSE / "host/grafana/provisioning/datasources/victoriametrics.yml"
    for path, datasources in (
        (COMPOSE / "host/docker-compose.yml", host),
        (COMPOSE / "cluster/docker-compose.yml", host),
        (
            COMPOSE / "ha/docker-compose.yml",
            COMPOSE / "ha/grafana/datasources/victoriametrics.yml",
        ),
    ):
        used = set(re.findall(r"\$\{(\w+)\}", datasources.read_text()))
        env = load_compose(path)["services"]["grafana"]["environment"]
        assert used <= set(env), f"{path}: grafana lacks {used - set(env)}"


def test_ha_has_two_of_each_and_one_entry_point():
    """compose/ha: two VictoriaMetrics (dedup), two VMAgents writing to both,
    two vmauth under one alias that Grafana and vmalert use, host's configs."""
    doc = load_compose(COMPOSE / "ha/docker-compose.yml")
    svc = doc["services"]
    storages = ["victoriametrics-a", "victoriametrics-b"]
    for name in storages:
        assert any(
            a.startswith("-dedup.minScrapeInterval=") for a in svc[name]["command"]
        )
    for name in ("vmagent-a", "vmagent-b"):
        urls = [a for a in svc[name]["command"] if a.startswith("-remoteWrite.url=")]
        assert urls == [
            f"-remoteWrite.url=http://{s}:8428/api/v1/write" for s in storages
        ]
        assert (
            "../host/vmagent/scrape.yml:/etc/vmagent/scrape.yml:ro"
            in svc[name]["volumes"]
        )
    for name in ("vmauth-a", "vmauth-b"):
        assert svc[name]["networks"]["monitoring"]["aliases"] == ["vmauth"]
    # vmauth reaches the storages through one alias both carry (Docker's DNS
    # answers with the running ones), not a list it would keep sending to a
    # stopped one.
    for name in storages:
        assert svc[name]["networks"]["monitoring"]["aliases"] == ["victoriametrics"]
    auth = yaml.safe_load((COMPOSE / "ha/auth.yml").read_text())
    assert auth["users"][0]["url_prefix"] == "http://victoriametrics:8428"
    assert (
        svc["grafana"]["environment"]["ALGALON_DATASOURCE_URL"] == "http://vmauth:8427"
    )
    flags = dict(a.split("=", 1) for a in svc["vmalert"]["command"])
    for f in ("-datasource.url", "-remoteWrite.url", "-remoteRead.url"):
        assert flags[f] == "http://vmauth:8427"
    assert "../host/vmalert:/etc/vmalert:ro" in svc["vmalert"]["volumes"]
    published = [n for n, s in svc.items() if s.get("ports")]
    assert published == ["grafana"]


def test_alertmanager_config_routes_to_a_receiver():
    doc = yaml.safe_load((COMPOSE / "host/alertmanager/alertmanager.yml").read_text())
    receivers = {r["name"] for r in doc["receivers"]}
    assert doc["route"]["receiver"] in receivers
    assert all(r["receiver"] in receivers for r in doc["route"].get("routes", []))
    names = {rule["alert"] for _, rule in alert_rules()}
    for inhibit in doc.get("inhibit_rules", []):
        for matcher in inhibit["source_matchers"] + inhibit["target_matchers"]:
            m = re.fullmatch(r'alertname(=~?)"(.*)"', matcher)
            if not m:
                continue
            # Every name or alternative of a regex names at least one alert.
            for alt in m[2].split("|") if m[1] == "=~" else [re.escape(m[2])]:
                assert any(re.fullmatch(alt, n) for n in names), matcher
