"""A training loop measured by Algalon: per-GPU energy, utilization and memory.

Runs anywhere NVML does. Without a GPU, use the simulated one::

    make fake-nvml
    ALGALON_NVML_LIB=target/fake-nvml/libnvidia-ml.so.1 \
    ALGALON_FAKE_NVML_SCENARIO=testing/scenarios/h100x8.json \
    python examples/python/train_loop.py --steps 20

With ``--serve PORT`` the job series stay on ``http://127.0.0.1:PORT/metrics``
while it runs; with ``--push URL`` the finished report goes to
VictoriaMetrics; with ``--save FILE`` it is written as JSON
(``train_report.py`` reads it back).
"""

from __future__ import annotations

import argparse
import time

import algalon

try:  # The same loop with PyTorch, when it is installed.
    import torch
except ImportError:  # pragma: no cover - depends on the machine
    torch = None


def train_step(step: int, batch_size: int) -> float:
    """One optimisation step; a sleep stands in for the GPU work."""
    if torch is not None and torch.cuda.is_available():
        x = torch.randn(batch_size, 4096, device="cuda")
        w = torch.randn(4096, 4096, device="cuda")
        loss = (x @ w).square().mean()
        torch.cuda.synchronize()
        return float(loss)
    time.sleep(0.05)
    return 1.0 / (step + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument(
        "--serve", type=int, metavar="PORT", help="serve /metrics on PORT"
    )
    parser.add_argument(
        "--push", metavar="URL", help="push the report to VictoriaMetrics"
    )
    parser.add_argument("--save", metavar="FILE", help="write the report as JSON")
    args = parser.parse_args()

    for gpu in algalon.gpus():
        print(f"cuda:{gpu.cuda_index} = GPU {gpu.nvml_index} {gpu.uuid} {gpu.name}")

    with algalon.Monitor(interval=0.1) as mon:
        if args.serve is not None:
            print("serving", mon.serve(port=args.serve).url)

        @mon.track("evaluate")
        def evaluate() -> None:
            time.sleep(0.1)

        with mon.job("train-loop", labels={"model": "tiny", "team": "example"}) as job:
            for step in range(args.steps):
                loss = train_step(step, args.batch_size)
                job.count(
                    samples=args.batch_size, tokens=args.batch_size * args.seq_len
                )
                if step % 10 == 0:
                    print(f"step {step:4d}  loss {loss:.4f}")
            evaluate()

        report = job.report
        print()
        print(report)
        if report.energy_per_sample is not None:
            print(f"{report.energy_per_sample:.3f} J per sample")
        for used in report.gpus:
            util = "-" if used.util_mean is None else f"{used.util_mean:.0f}%"
            print(f"cuda:{used.cuda_index} {used.name}: mean utilization {util}")
        print(evaluate.last_report)

        if args.save:
            with open(args.save, "w") as f:
                f.write(report.to_json(indent=2))
            print("saved", args.save)
        if args.push:
            try:
                report.push(args.push)
                print("pushed to", args.push)
            except algalon.PushError as e:
                print("push failed:", e)


if __name__ == "__main__":
    main()
