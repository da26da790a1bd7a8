"""The exporter's live page at ``/`` in a real browser (headless Chromium).

The exporter runs on the fake NVML's ``h100x8`` scenario with a stepped clock
(``ALGALON_FAKE_NVML_CLOCK_FILE``) and process sampling over a ``/proc``
stand-in, so every value the page shows is known from the scenario:

* eight cards, GPU 0 … GPU 7, with each GPU's utilization and power at the
  scenario time, and its training process by name next to its PID;
* stepping the clock changes the cards without a reload, and each card
  grows a sparkline from the history the exporter keeps;
* a GPU that falls off the bus turns its card "down" while the others go on;
* when the exporter stops, the page keeps the last cards (dimmed) and says
  it cannot reach the exporter; when it comes back the page recovers by
  itself, still without a reload.

``ALGALON_UPDATE_SCREENSHOT=1`` also writes the screenshot README.md shows,
``docs/live-page.png``; otherwise it goes to the test's temporary directory.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
sys.path.insert(0, str(Path(__file__).parent))

from cdp import Browser, chromium_path
from e2e_stack import Processes, free_ports, http_get, wait_until

EXPORTER = Path(
    os.environ.get(
        "ALGALON_EXPORTER_BIN", REPO / "target" / "debug" / "algalon-exporter"
    )
)
FAKE_LIB = (
    Path(os.environ.get("ALGALON_FAKE_NVML_DIR", REPO / "target" / "fake-nvml"))
    / "libnvidia-ml.so.1"
)
SCENARIO = REPO / "testing" / "scenarios" / "h100x8.json"
SCREENSHOT = REPO / "docs" / "live-page.png"
LOST_GPU = 3
LOST_AT_S = 40.0
# Card texts, read in one go.
CARDS_JS = """[...document.querySelectorAll('section.gpu')].map(c => ({
  title: c.querySelector('h2').textContent,
  down: c.classList.contains('down'),
  util: (c.querySelector('.util .value') || {}).textContent,
  power: (c.querySelector('.power .value') || {}).textContent,
  reason: (c.querySelector('.reason') || {}).textContent,
  procs: [...c.querySelectorAll('tr.proc')].map(r => r.textContent),
  points: Number((c.querySelector('.spark') || {dataset: {}}).dataset.points || 0),
  lines: c.querySelectorAll('.spark polyline').length,
}))"""


def sine(spec: object, t: float) -> float:
    """The fake's value at scenario time t (testing/README.md)."""
    if isinstance(spec, dict) and "sine" in spec:
        s = spec["sine"]
        angle = 2 * math.pi * (t + s.get("phase_s", 0)) / s["period_s"]
        return s["base"] + s["amplitude"] * math.sin(angle)
    assert isinstance(spec, (int, float)), spec
    return float(spec)


def number(text: str) -> float:
    return float(text.split()[0])


class Clock:
    def __init__(self, path: Path) -> None:
        self.path = path

    def set(self, t: float) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(f"{t}\n")
        tmp.replace(self.path)  # the fake never reads a half-written time


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    if chromium_path() is None:
        pytest.fail(
            "chromium is not installed: apt-get install chromium (or make deps)"
        )
    for needed, how in (
        (EXPORTER, "cargo build -p algalon-exporter"),
        (FAKE_LIB, "make fake-nvml"),
    ):
        if not needed.exists():
            pytest.fail(f"{needed} is missing: run `{how}`")
    tmp = tmp_path_factory.mktemp("live-page")
    scenario = json.loads(SCENARIO.read_text())
    scenario["gpus"][LOST_GPU]["lost_after_s"] = LOST_AT_S
    scenario_file = tmp / "h100x8-lost.json"
    scenario_file.write_text(json.dumps(scenario))
    # /proc as the exporter reads it for process names: one comm per PID the
    # scenario runs (the fake's PIDs are not this machine's processes).
    proc = tmp / "proc"
    for gpu in scenario["gpus"]:
        for p in gpu.get("processes", []):
            (proc / str(p["pid"])).mkdir(parents=True, exist_ok=True)
            (proc / str(p["pid"]) / "comm").write_text(p["name"] + "\n")
    clock = Clock(tmp / "clock")
    clock.set(5.0)
    (port,) = free_ports(1)
    logs = tmp / "logs"
    logs.mkdir()
    procs = Processes(logs)
    env = {
        "ALGALON_FAKE_NVML_SCENARIO": str(scenario_file),
        "ALGALON_FAKE_NVML_CLOCK_FILE": str(clock.path),
    }
    argv = [
        str(EXPORTER),
        "--nvml-lib", str(FAKE_LIB),
        "-a", f"127.0.0.1:{port}",
        "-c", "250",
        "--processes",
        "--proc-root", str(proc),
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}/"

    def start_exporter() -> None:
        procs.start("exporter", argv, env)
        wait_until(
            "the exporter to serve /health",
            lambda: http_get(base + "health")[0] == 200,
            timeout=30,
            interval=0.1,
            on_wait=procs.check_alive,
        )

    start_exporter()
    browser = Browser(tmp / "chromium")
    try:
        yield {
            "scenario": scenario,
            "clock": clock,
            "browser": browser,
            "base": base,
            "procs": procs,
            "start_exporter": start_exporter,
            "tmp": tmp,
        }
    finally:
        browser.close()
        procs.stop_all()


def expected(scenario: dict, t: float) -> list[tuple[float, float]]:
    """(utilization %, power W) of every GPU at scenario time t."""
    return [
        (sine(g["utilization"]["gpu"], t), sine(g["power_w"], t))
        for g in scenario["gpus"]
    ]


def wait_for_values(
    browser: Browser, scenario: dict, t: float, skip: set[int] = frozenset()
):
    """Waits until every up card shows the scenario's readings at time t (NVML
    reports whole percent and milliwatts: one unit of rounding either way)."""
    want = expected(scenario, t)

    def matches():
        cards = browser.eval(CARDS_JS)
        if len(cards) != 8:
            return None
        for i, (card, (util, power)) in enumerate(zip(cards, want)):
            if i in skip:
                continue
            if card["down"] or not card["util"] or not card["power"]:
                return None
            if (
                abs(number(card["util"]) - util) > 1
                or abs(number(card["power"]) - power) > 1
            ):
                return None
        return cards

    return wait_until(
        f"the cards to show the readings at t={t}", matches, timeout=20, interval=0.3
    )


def test_live_page_in_chromium(world) -> None:
    browser: Browser = world["browser"]
    scenario = world["scenario"]
    clock: Clock = world["clock"]
    browser.goto(world["base"])
    browser.eval("window.__algalonLoaded = 'first load'")

    # Eight cards, GPU 0 … GPU 7, with the scenario's readings at t = 5 s.
    cards = wait_for_values(browser, scenario, 5.0)
    assert [c["title"] for c in cards] == [f"GPU {i}" for i in range(8)]
    for i, card in enumerate(cards):
        assert any(
            p.startswith("python3") and f"pid {4242 + i}" in p for p in card["procs"]
        ), f"GPU {i}: the training process by name next to its PID: {card['procs']}"
        assert card["power"].endswith("/ 700 W"), card["power"]
    status = browser.eval("document.getElementById('status').textContent")
    assert status.startswith("8 GPUs"), status

    # Time moves: the same page shows the new readings, and tritonserver,
    # which the scenario starts on GPU 2 at t = 10 s.
    clock.set(15.0)
    cards = wait_for_values(browser, scenario, 15.0)
    assert any(
        p.startswith("tritonserver") and "pid 7001" in p for p in cards[2]["procs"]
    ), cards[2]
    assert browser.eval("window.__algalonLoaded") == "first load", (
        "the page was reloaded"
    )

    # History: each card draws the points the exporter kept.
    clock.set(17.5)
    cards = wait_until(
        "every card to draw a sparkline of at least 3 points",
        lambda: (
            (c := browser.eval(CARDS_JS))
            and all(x["points"] >= 3 and x["lines"] >= 2 for x in c)
            and c
        ),
        timeout=30,
        interval=0.5,
    )
    shot = world["tmp"] / "live-page.png"
    browser.screenshot(shot)
    assert shot.read_bytes().startswith(b"\x89PNG"), "a PNG screenshot"
    if os.environ.get("ALGALON_UPDATE_SCREENSHOT") == "1":
        # For the docs: about a minute of history, every GPU up (scenario
        # time stays before GPU 3 is lost).
        for step in range(110):
            clock.set(17.5 + 0.2 * step)
            time.sleep(0.5)
        time.sleep(2.5)
        SCREENSHOT.parent.mkdir(exist_ok=True)
        browser.screenshot(SCREENSHOT)
        clock.set(17.5)

    # GPU 3 falls off the bus: its card says so, the other seven go on.
    clock.set(LOST_AT_S + 5)
    cards = wait_for_values(browser, scenario, LOST_AT_S + 5, skip={LOST_GPU})
    cards = wait_until(
        f"GPU {LOST_GPU}'s card to show it down",
        lambda: (c := browser.eval(CARDS_JS))[LOST_GPU]["down"] and c,
        timeout=20,
        interval=0.3,
    )
    assert "fell off the bus" in cards[LOST_GPU]["reason"], cards[LOST_GPU]
    assert cards[LOST_GPU]["points"] >= 3, "a lost GPU keeps its history"
    assert sum(c["down"] for c in cards) == 1
    assert "(1 down)" in browser.eval("document.getElementById('status').textContent")

    # The exporter stops: the cards stay (dimmed) and the page says why.
    world["procs"].stop("exporter")
    browser.wait_for(
        "document.getElementById('status').textContent.startsWith('cannot reach the exporter')"
        " && document.getElementById('gpus').classList.contains('stale')",
        timeout=15,
        what="the page to say it cannot reach the exporter",
    )
    assert len(browser.eval(CARDS_JS)) == 8, "the last cards stay on the page"

    # It comes back (same port, same clock): the page recovers on its own.
    world["start_exporter"]()
    clock.set(LOST_AT_S + 7)
    wait_for_values(browser, scenario, LOST_AT_S + 7, skip={LOST_GPU})
    assert not browser.eval(
        "document.getElementById('gpus').classList.contains('stale')"
    )
    assert browser.eval("window.__algalonLoaded") == "first load", (
        "the page was reloaded"
    )
    errors = [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown"]
    assert not errors, f"the page threw: {errors}"
