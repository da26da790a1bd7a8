#!/usr/bin/env python3
"""A kubelet stand-in: the real pod-resources v1 gRPC API on a unix socket,
and optionally an API server stand-in (HTTPS, pods with labels), both driven
by a JSON scenario.

The gRPC code is generated at start-up with grpcio-tools from the same
vendored api.proto Algalon's client is generated from
(algalon-kubernetes/proto/podresources/v1/api.proto), so both sides speak the
kubelet's protocol as written upstream.

Usage:
    standin.py --scenario S.json --socket DIR/kubelet.sock [--apiserver DIR]

It prints one JSON line when ready ({"ready": true, "socket": ..., and with
--apiserver: "apiserver", "ca", "token", "host", "port"}), then reads commands
from stdin, one JSON object a line, answering each with one JSON line:

    {"state": "NAME"}   switch to the scenario's state NAME
    {"stats": true}     counts of calls served so far
    {"quit": true}      stop (so does end of input)

With --schedule, the scenario's "schedule" switches states by time instead
(for trying Algalon by hand; tests switch states through stdin).
See testing/README.md for the scenario format.
"""

from __future__ import annotations

import argparse
import datetime
import http.server
import ipaddress
import json
import secrets
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROTO_DIR = REPO / "algalon-kubernetes" / "proto" / "podresources" / "v1"
SOCKET_STATES = ("serving", "absent", "not-listening")


class ScenarioError(Exception):
    """A scenario that cannot be served; the message names the place."""


def load_scenario(path: Path) -> dict:
    """Reads and checks a scenario: unknown keys and dangling pod references
    are errors naming their JSON path."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ScenarioError(f"{path}: {e}") from e
    return check_scenario(data, str(path))


def _keys(obj: object, allowed: set[str], where: str) -> dict:
    if not isinstance(obj, dict):
        raise ScenarioError(f"{where}: expected an object")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ScenarioError(
            f"{where}: unknown key {unknown[0]!r} (allowed: {sorted(allowed)})"
        )
    return obj


def check_scenario(data: dict, name: str) -> dict:
    _keys(
        data,
        {"description", "pods", "states", "initial", "schedule", "allocatable"},
        name,
    )
    pods = data.get("pods", {})
    _keys(pods, set(pods), f"{name}: pods")
    for key, pod in pods.items():
        where = f"{name}: pods.{key}"
        _keys(pod, {"name", "namespace", "uid", "labels", "containers"}, where)
        for field in ("name", "namespace"):
            if not isinstance(pod.get(field), str) or not pod[field]:
                raise ScenarioError(f"{where}.{field}: a non-empty string is required")
        for i, c in enumerate(pod.get("containers", [])):
            _keys(c, {"name", "devices"}, f"{where}.containers[{i}]")
            for j, d in enumerate(c.get("devices", [])):
                _keys(
                    d,
                    {"resource_name", "device_ids"},
                    f"{where}.containers[{i}].devices[{j}]",
                )
    states = data.get("states")
    if not isinstance(states, dict) or not states:
        raise ScenarioError(f"{name}: states: at least one state is required")
    for sname, state in states.items():
        where = f"{name}: states.{sname}"
        _keys(state, {"pods", "latency_ms", "socket", "error", "apiserver"}, where)
        for ref in state.get("pods", []):
            if ref not in pods:
                raise ScenarioError(
                    f"{where}.pods: no pod {ref!r} in the scenario's pods"
                )
        if state.get("socket", "serving") not in SOCKET_STATES:
            raise ScenarioError(f"{where}.socket: one of {SOCKET_STATES}")
        _keys(
            state.get("apiserver", {}), {"latency_ms", "status"}, f"{where}.apiserver"
        )
    initial = data.get("initial", next(iter(states)))
    if initial not in states:
        raise ScenarioError(f"{name}: initial: no state {initial!r}")
    data["initial"] = initial
    for i, step in enumerate(data.get("schedule", [])):
        _keys(step, {"at_s", "state"}, f"{name}: schedule[{i}]")
        if step.get("state") not in states:
            raise ScenarioError(
                f"{name}: schedule[{i}].state: no state {step.get('state')!r}"
            )
    return data


def generate_stubs(out: Path) -> None:
    """Generates api_pb2 / api_pb2_grpc from the vendored proto into out."""
    from grpc_tools import protoc

    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            str(PROTO_DIR / "api.proto"),
        ]
    )
    if rc != 0:
        raise SystemExit(
            f"standin: grpc_tools.protoc failed on {PROTO_DIR / 'api.proto'} ({rc})"
        )
    sys.path.insert(0, str(out))


class Kubelet:
    """The scenario's current state and the gRPC server that serves it."""

    def __init__(self, scenario: dict, socket_path: Path):
        import api_pb2
        import api_pb2_grpc
        import grpc

        self.grpc = grpc
        self.pb = api_pb2
        self.pb_grpc = api_pb2_grpc
        self.scenario = scenario
        self.socket_path = socket_path
        self.lock = threading.Lock()
        self.state_name = scenario["initial"]
        self.server = None
        self.stats = {"List": 0, "Get": 0, "GetAllocatableResources": 0, "apiserver": 0}

    @property
    def state(self) -> dict:
        return self.scenario["states"][self.state_name]

    def pods(self) -> list[dict]:
        return [self.scenario["pods"][ref] for ref in self.state.get("pods", [])]

    def switch(self, name: str) -> None:
        if name not in self.scenario["states"]:
            raise ScenarioError(f"no state {name!r}")
        with self.lock:
            self.state_name = name
        self.apply_socket()

    def apply_socket(self) -> None:
        want = self.state.get("socket", "serving")
        if want == "serving":
            if self.server is None:
                self._unlink()
                self.server = self._start()
            return
        if self.server is not None:
            self.server.stop(grace=0).wait()
            self.server = None
        self._unlink()
        if want == "not-listening":
            # A socket file nobody listens on: what a crashed kubelet leaves.
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(str(self.socket_path))
            s.close()

    def _unlink(self) -> None:
        try:
            self.socket_path.unlink()
        except FileNotFoundError:
            pass

    def _start(self):
        server = self.grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self.pb_grpc.add_PodResourcesListerServicer_to_server(Servicer(self), server)
        server.add_insecure_port(f"unix:{self.socket_path}")
        server.start()
        return server

    def answer(self, method: str, context) -> None:
        """Counts the call, waits the state's latency, fails if it says so."""
        with self.lock:
            self.stats[method] += 1
            state = self.state
        latency = state.get("latency_ms", 0) / 1000.0
        if latency:
            time.sleep(latency)
        if state.get("error"):
            code = getattr(self.grpc.StatusCode, state["error"])
            context.abort(code, f"kubelet stand-in: injected {state['error']}")

    def pod_message(self, pod: dict):
        pb = self.pb
        return pb.PodResources(
            name=pod["name"],
            namespace=pod["namespace"],
            containers=[
                pb.ContainerResources(
                    name=c["name"],
                    devices=[
                        pb.ContainerDevices(
                            resource_name=d["resource_name"], device_ids=d["device_ids"]
                        )
                        for d in c.get("devices", [])
                    ],
                )
                for c in pod.get("containers", [])
            ],
        )

    def allocatable(self) -> list[tuple[str, list[str]]]:
        if "allocatable" in self.scenario:
            return [
                (d["resource_name"], d["device_ids"])
                for d in self.scenario["allocatable"]
            ]
        by_resource: dict[str, list[str]] = {}
        for pod in self.scenario["pods"].values():
            for c in pod.get("containers", []):
                for d in c.get("devices", []):
                    ids = by_resource.setdefault(d["resource_name"], [])
                    ids.extend(i for i in d["device_ids"] if i not in ids)
        return sorted(by_resource.items())


class Servicer:
    """PodResourcesLister, answering from the current state."""

    def __init__(self, kubelet: Kubelet):
        self.k = kubelet

    def List(self, request, context):
        self.k.answer("List", context)
        return self.k.pb.ListPodResourcesResponse(
            pod_resources=[self.k.pod_message(p) for p in self.k.pods()]
        )

    def Get(self, request, context):
        self.k.answer("Get", context)
        for p in self.k.pods():
            if (
                p["name"] == request.pod_name
                and p["namespace"] == request.pod_namespace
            ):
                return self.k.pb.GetPodResourcesResponse(
                    pod_resources=self.k.pod_message(p)
                )
        context.abort(
            self.k.grpc.StatusCode.NOT_FOUND,
            f"pod {request.pod_namespace}/{request.pod_name} not found",
        )

    def GetAllocatableResources(self, request, context):
        self.k.answer("GetAllocatableResources", context)
        return self.k.pb.AllocatableResourcesResponse(
            devices=[
                self.k.pb.ContainerDevices(resource_name=r, device_ids=ids)
                for r, ids in self.k.allocatable()
            ]
        )


def make_certificates(out: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 / localhost signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "kubelet stand-in CA")]
    )
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
        )
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = (
        out / "ca.crt",
        out / "server.crt",
        out / "server.key",
    )
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


def start_apiserver(kubelet: Kubelet, out: Path) -> dict:
    """An HTTPS API server stand-in serving the current state's pods at
    /api/v1/namespaces/{ns}/pods/{name} to holders of the token. Writes
    out/token and out/ca.crt, as a service-account mount has them."""
    out.mkdir(parents=True, exist_ok=True)
    ca, cert, key = make_certificates(out)
    token = secrets.token_urlsafe(32)
    (out / "token").write_text(token + "\n")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def reply(self, code: int, obj: dict) -> None:
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def status(self, code: int, reason: str, message: str) -> None:
            self.reply(
                code,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "message": message,
                    "reason": reason,
                    "code": code,
                },
            )

        def do_GET(self) -> None:
            with kubelet.lock:
                kubelet.stats["apiserver"] += 1
                state = kubelet.state
                pods = kubelet.pods()
            settings = state.get("apiserver", {})
            if settings.get("latency_ms"):
                time.sleep(settings["latency_ms"] / 1000.0)
            if self.headers.get("Authorization") != f"Bearer {token}":
                self.status(401, "Unauthorized", "Unauthorized")
                return
            forced = settings.get("status")
            if forced == 403:
                self.status(
                    403,
                    "Forbidden",
                    'pods is forbidden: User "system:serviceaccount:gpu:algalon" cannot get '
                    'resource "pods" in API group "" in the namespace',
                )
                return
            if forced:
                self.status(forced, "InternalError", "injected by the stand-in")
                return
            parts = self.path.split("?")[0].strip("/").split("/")
            if (
                len(parts) != 6
                or parts[:3] != ["api", "v1", "namespaces"]
                or parts[4] != "pods"
            ):
                self.status(404, "NotFound", f"the server could not find {self.path}")
                return
            ns, name = parts[3], parts[5]
            for p in pods:
                if p["namespace"] == ns and p["name"] == name:
                    meta = {
                        "name": name,
                        "namespace": ns,
                        "labels": p.get("labels", {}),
                    }
                    if p.get("uid"):
                        meta["uid"] = p["uid"]
                    self.reply(
                        200,
                        {
                            "kind": "Pod",
                            "apiVersion": "v1",
                            "metadata": meta,
                            "spec": {"nodeName": "standin"},
                            "status": {"phase": "Running"},
                        },
                    )
                    return
            self.status(404, "NotFound", f'pods "{name}" not found')

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    return {
        "apiserver": f"https://127.0.0.1:{port}",
        "host": "127.0.0.1",
        "port": port,
        "ca": str(ca),
        "token": str(out / "token"),
    }


def say(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def main() -> int:
    # SIGTERM cleans up like end of input: the socket file is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", required=True, type=Path)
    parser.add_argument("--socket", required=True, type=Path)
    parser.add_argument(
        "--apiserver",
        type=Path,
        help="also serve pods over HTTPS; token and CA go here",
    )
    parser.add_argument(
        "--state", help="start in this state instead of the scenario's initial"
    )
    parser.add_argument(
        "--schedule",
        action="store_true",
        help="switch states by the scenario's schedule (and keep serving after stdin ends)",
    )
    args = parser.parse_args()
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as e:
        print(f"standin: invalid scenario: {e}", file=sys.stderr)
        return 2
    if args.state:
        if args.state not in scenario["states"]:
            print(f"standin: --state {args.state!r}: no such state", file=sys.stderr)
            return 2
        scenario["initial"] = args.state
    with tempfile.TemporaryDirectory(prefix="kubelet-standin-") as gen:
        generate_stubs(Path(gen))
        kubelet = Kubelet(scenario, args.socket)
        kubelet.apply_socket()
        ready = {"ready": True, "socket": str(args.socket), "state": kubelet.state_name}
        if args.apiserver:
            ready.update(start_apiserver(kubelet, args.apiserver))
        say(ready)
        schedule = sorted(scenario.get("schedule", []), key=lambda s: s["at_s"])
        if args.schedule and not schedule:
            print("standin: --schedule: the scenario has no schedule", file=sys.stderr)
            return 2
        if args.schedule:
            threading.Thread(
                target=run_schedule, args=(kubelet, schedule), daemon=True
            ).start()
        try:
            for line in sys.stdin:
                line = line.strip()
                if not line:
                    continue
                try:
                    cmd = json.loads(line)
                    if cmd.get("quit"):
                        break
                    if "state" in cmd:
                        kubelet.switch(cmd["state"])
                        say({"ok": True, "state": kubelet.state_name})
                    elif cmd.get("stats"):
                        with kubelet.lock:
                            say({"ok": True, **kubelet.stats})
                    else:
                        say({"ok": False, "error": f"unknown command {line}"})
                except (json.JSONDecodeError, ScenarioError, AttributeError) as e:
                    say({"ok": False, "error": str(e)})
            if args.schedule:
                # Without a controller, keep serving the schedule until killed.
                threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            if kubelet.server is not None:
                kubelet.server.stop(grace=0).wait()
            kubelet._unlink()
    return 0


def run_schedule(kubelet: Kubelet, schedule: list[dict]) -> None:
    start = time.monotonic()
    for step in schedule:
        delay = step["at_s"] - (time.monotonic() - start)
        if delay > 0:
            time.sleep(delay)
        kubelet.switch(step["state"])
        print(
            f"standin: t={step['at_s']}s state {step['state']}",
            file=sys.stderr,
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
