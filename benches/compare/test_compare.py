"""Unit tests for the parts of compare.py whose mistakes would not show in a run.

python3 -m pytest -q benches/compare
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare


def wrk_correct(recorded: dict[int, int], e: int) -> dict[int, int]:
    """wrk 4's stats_correct, transcribed: every n >= 2e also counts at n-e, n-2e, … > e."""
    data = dict(recorded)
    for n in range(2 * e, max(recorded) + 1):
        count = recorded.get(n, 0)
        m = n - e
        while count and m > e:
            data[m] = data.get(m, 0) + count
            m -= e
    return data


@pytest.mark.parametrize("seed", range(50))
def test_undoing_wrks_correction_recovers_the_recorded_latencies(seed: int) -> None:
    rng = random.Random(seed)
    conns = rng.choice([1, 16, 64])
    e = rng.randint(2, 60)
    recorded: dict[int, int] = {}
    for _ in range(rng.randint(conns, 400)):
        # Mostly near the mean interval, with stalls of up to 30 intervals.
        v = max(1, int(rng.expovariate(1 / (e * rng.choice([0.5, 1, 3, 30])))))
        recorded[v] = recorded.get(v, 0) + rng.randint(1, 4)
    requests = sum(recorded.values())
    # A run time for which wrk derives exactly this e.
    duration_us = e * (requests // conns)
    run = {
        "histogram": sorted(wrk_correct(recorded, e).items()),
        "requests": requests,
        "duration_us": duration_us,
        "errors": {"timeout": 0},
    }
    assert compare.undo_wrk_correction(run, conns) == recorded


def test_a_histogram_that_does_not_add_up_is_rejected() -> None:
    run = {
        "histogram": [[10, 5], [50, 1]],
        "requests": 100,
        "duration_us": 1000,
        "errors": {"timeout": 0},
    }
    assert compare.undo_wrk_correction(run, 1) is None


def test_percentiles_are_nearest_rank() -> None:
    hist = {10: 98, 500: 1, 9000: 1}
    assert compare.hist_percentile(hist, 50) == pytest.approx(10e-6)
    assert compare.hist_percentile(hist, 99) == pytest.approx(500e-6)
    assert compare.percentile([3.0, 1.0, 2.0], 50) == 2.0


def test_scenario_values_match_the_fake_nvml_forms() -> None:
    assert compare.value_at(42, 7.0) == 42.0
    sine = {"sine": {"base": 60, "amplitude": 30, "period_s": 20, "phase_s": 5}}
    assert compare.value_at(sine, 0.0) == pytest.approx(90.0)
    steps = {"steps": [[10, 1], [20, 2]]}
    assert [compare.value_at(steps, t) for t in (0, 10, 19.9, 25)] == [1, 1, 1, 2]


def test_expected_readings_expand_count(tmp_path: Path) -> None:
    spec = json.loads(compare.SCALING_SCENARIO.read_text())
    spec["gpus"][0]["count"] = 3
    path = tmp_path / "s.json"
    path.write_text(json.dumps(spec))
    readings = compare.expected_readings(path, 0.0)
    assert len(readings) == 3
    assert readings[0] == {"utilization": 60.0, "memory used": 64000.0, "power": 420.0}


def test_write_section_replaces_only_the_marked_part(tmp_path: Path) -> None:
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\nintro\n")
    compare.write_section(md, "first table")
    compare.write_section(md, "second table")
    text = md.read_text()
    assert text.startswith("# Benchmarks\n\nintro\n\n")
    assert "first table" not in text
    assert text.count(compare.BEGIN_MARK) == 1
    assert text.endswith(f"{compare.BEGIN_MARK}\nsecond table\n{compare.END_MARK}\n")
    md.write_text(text + "\n## Later section\n")
    compare.write_section(md, "third table")
    assert md.read_text().endswith(
        f"third table\n{compare.END_MARK}\n## Later section\n"
    )
