"""Stand-in for the grafana/grafana-oss image where Grafana cannot be had.

It is not Grafana and draws nothing. It checks what compose/host hands
Grafana, where Grafana reads it, and refuses to start (one line, exit 1) when
Grafana would not get what it needs:

- GF_SECURITY_ADMIN_PASSWORD is set (and not Grafana's default, "admin");
- every file in $GF_PATHS_PROVISIONING/datasources parses, with $VAR and
  ${VAR} filled in from the environment as Grafana does, and every datasource
  has a name, type, uid and URL;
- every dashboard provider in $GF_PATHS_PROVISIONING/dashboards points at a
  mounted folder whose *.json files parse, each with a title and a uid of its
  own; GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH is one of them;
- $GF_PATHS_DATA is writable (Grafana keeps its database there).

Then it holds Grafana's port (GF_SERVER_HTTP_PORT, 3000) and answers
GET /api/health (no login) and GET /api/search (the admin's basic auth: the
dashboards it loaded), with Grafana's paths, so that the same checks run
against the real image where it can be pulled.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import re
import signal
import sys
import tempfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

_ENV_REF = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


class Refused(Exception):
    """What the real Grafana would fail or misbehave on."""


def expand(text: str) -> str:
    return _ENV_REF.sub(lambda m: os.environ.get(m.group(1) or m.group(2), ""), text)


def provisioning_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise Refused(
            f"{directory} is not mounted: Grafana would provision nothing from it"
        )
    return sorted(p for p in directory.iterdir() if p.suffix in (".yml", ".yaml"))


def load_yaml(path: Path) -> dict:
    try:
        doc = yaml.safe_load(expand(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise Refused(f"{path}: {e}".replace("\n", " ")) from None
    if not isinstance(doc, dict):
        raise Refused(f"{path}: not a provisioning file (no mapping at the top)")
    return doc


def check_datasources(root: Path) -> list[str]:
    names = []
    for path in provisioning_files(root / "datasources"):
        for i, ds in enumerate(load_yaml(path).get("datasources") or []):
            for key in ("name", "type", "uid", "url"):
                if not str(ds.get(key) or "").strip():
                    raise Refused(f"{path}: datasources[{i}].{key} is empty")
            names.append(f"{ds['name']} ({ds['type']}, {ds['url']})")
    if not names:
        raise Refused(f"{root / 'datasources'}: no datasource provisioned")
    return names


def check_dashboards(root: Path) -> list[dict]:
    found: list[dict] = []
    uids: dict[str, Path] = {}
    for path in provisioning_files(root / "dashboards"):
        for i, provider in enumerate(load_yaml(path).get("providers") or []):
            folder = Path(str((provider.get("options") or {}).get("path") or ""))
            if not folder.is_dir():
                raise Refused(
                    f"{path}: providers[{i}].options.path {folder} is not mounted"
                )
            for board in sorted(folder.glob("*.json")):
                try:
                    doc = json.loads(board.read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError, ValueError) as e:
                    raise Refused(f"{board}: does not parse: {e}") from None
                uid, title = doc.get("uid"), doc.get("title")
                if not uid or not title:
                    raise Refused(f"{board}: no uid or no title")
                if uid in uids:
                    raise Refused(f"{board}: uid {uid} is also {uids[uid]}'s")
                uids[uid] = board
                found.append(
                    {"uid": uid, "title": title, "type": "dash-db", "path": str(board)}
                )
    if not found:
        raise Refused(f"{root / 'dashboards'}: no dashboard provisioned")
    home = os.environ.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home and home not in {d["path"] for d in found}:
        raise Refused(
            f"GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH={home} is not a provisioned dashboard"
        )
    return found


def check() -> tuple[str, str, list[dict]]:
    user = os.environ.get("GF_SECURITY_ADMIN_USER") or "admin"
    password = os.environ.get("GF_SECURITY_ADMIN_PASSWORD") or ""
    if not password or password == "admin":
        raise Refused(
            "GF_SECURITY_ADMIN_PASSWORD is not set (Grafana would keep its default admin/admin)"
        )
    root = Path(os.environ.get("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning"))
    datasources = check_datasources(root)
    boards = check_dashboards(root)
    data = Path(os.environ.get("GF_PATHS_DATA", "/var/lib/grafana"))
    try:
        with tempfile.NamedTemporaryFile(dir=data):
            pass
    except OSError as e:
        raise Refused(f"{data} is not writable by uid {os.getuid()}: {e}") from None
    for name in datasources:
        print(f"grafana-standin: datasource {name}", flush=True)
    for board in boards:
        print(
            f"grafana-standin: dashboard {board['uid']}: {board['title']}", flush=True
        )
    return user, password, boards


def serve(user: str, password: str, boards: list[dict]) -> None:
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    version = os.environ.get("GRAFANA_STANDIN_VERSION", "stand-in")

    class Handler(BaseHTTPRequestHandler):
        def reply(self, code: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/api/health":
                self.reply(200, {"database": "ok", "version": version, "standin": True})
            elif not hmac.compare_digest(
                self.headers.get("Authorization", ""), expected
            ):
                self.reply(401, {"message": "Invalid username or password"})
            elif path == "/api/search":
                self.reply(
                    200, [{k: v for k, v in b.items() if k != "path"} for b in boards]
                )
            else:
                self.reply(404, {"message": "Not found (Grafana stand-in)"})

        def log_message(self, fmt: str, *args: object) -> None:
            pass

    port = int(os.environ.get("GF_SERVER_HTTP_PORT", "3000"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"grafana-standin: NOT Grafana; checks passed, holding :{port}", flush=True)
    server.serve_forever()


def main() -> int:
    try:
        user, password, boards = check()
    except Refused as e:
        print(
            f"grafana-standin: Grafana would not start as configured: {e}",
            file=sys.stderr,
            flush=True,
        )
        return 1
    serve(user, password, boards)
    return 0


if __name__ == "__main__":
    sys.exit(main())
