"""A crowded Kubernetes node for the kubelet stand-in (`testing/kubelet/`):
the pods the Kubernetes benchmarks serve, shared by `kubelet-pods.py` and
`kubelet-exporter.py`."""

from __future__ import annotations


def node_pods(pods: int, shared: int, gpus: list[str], labels: bool = False) -> dict:
    """`pods` pods by stand-in key; the first `shared` hold one time-sliced
    replica of a GPU each (`GPU::replica`), the rest no device. Every pod has
    a `main` and a `sidecar` container, and with `labels` five pod labels."""
    out = {}
    for i in range(pods):
        devices = []
        if i < shared:
            gpu, replica = gpus[i % len(gpus)], i // len(gpus)
            devices = [
                {"resource_name": "nvidia.com/gpu", "device_ids": [f"{gpu}::{replica}"]}
            ]
        pod = {
            "name": f"job-{i:04d}-7c9f5d4b8-x2k4q",
            "namespace": f"team-{i % 20}",
            "uid": f"{i:08x}-aaaa-4bbb-8ccc-{i:012x}",
        }
        if labels:
            pod["labels"] = {
                "app.kubernetes.io/name": "trainer",
                "app.kubernetes.io/instance": f"job-{i:04d}",
                "team": f"team-{i % 20}",
                "pod-template-hash": "7c9f5d4b8",
                "kueue.x-k8s.io/queue-name": "gpu",
            }
        pod["containers"] = [
            {"name": "main", "devices": devices},
            {"name": "sidecar", "devices": []},
        ]
        out[f"p{i}"] = pod
    return out
