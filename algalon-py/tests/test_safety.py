"""The GIL, fork(), and a GPU lost in the middle of a job."""

from __future__ import annotations

from conftest import SCENARIOS, run_python


def test_gil_is_released_while_waiting_on_nvml() -> None:
    # Every NVML call takes 20 ms, so opening NVML and each boundary sample
    # take a good part of a second; another Python thread must run meanwhile.
    out = run_python(
        """
        import threading, time
        import algalon

        count = 0
        stop = False
        def spin():
            global count
            while not stop:
                count += 1
        t = threading.Thread(target=spin, daemon=True)
        t.start()
        time.sleep(0.05)

        def progress(call):
            before = count
            started = time.monotonic()
            result = call()
            return result, count - before, time.monotonic() - started

        mon, spun, took = progress(lambda: algalon.Monitor(interval=0.5))
        assert took > 0.2, took
        assert spun > 10000, ("Monitor() held the GIL", spun, took)
        job = mon.job("gil")
        _, spun, took = progress(job.start)
        assert took > 0.1 and spun > 5000, ("job start held the GIL", spun, took)
        # The sampler thread samples (slowly) in the background meanwhile.
        before = count
        time.sleep(1.2)
        assert count - before > 20000, count - before
        _, spun, took = progress(job.end)
        assert spun > 5000, ("job end held the GIL", spun, took)
        assert job.report.gpus[0].samples >= 3
        stop = True
        mon.close()
        print("ok")
        """,
        env={"ALGALON_FAKE_NVML_LATENCY_MS": "20"},
        timeout=120,
    )
    assert "ok" in out.stdout


def test_fork_child_gets_a_clear_error_and_can_start_fresh() -> None:
    out = run_python(
        """
        import gc, os, sys, time
        import algalon

        mon = algalon.Monitor(interval=0.02)
        job = mon.job("parent").start()
        time.sleep(0.1)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                try:
                    mon.job("child").start()
                except algalon.AlgalonError as e:
                    assert "fork" in str(e) and "new algalon.Monitor" in str(e), e
                else:
                    raise AssertionError("no error in the child")
                try:
                    job.end()
                except algalon.AlgalonError:
                    pass
                else:
                    raise AssertionError("ending the parent's job worked in the child")
                fresh = algalon.Monitor(interval=0.02)
                with fresh.job("child") as cj:
                    time.sleep(0.2)
                assert cj.report.energy_j and cj.report.energy_j > 0
                fresh.close()
                # Dropping the inherited Monitor must not wait for threads
                # that do not exist here.
                started = time.monotonic()
                del mon, job
                gc.collect()
                assert time.monotonic() - started < 1.0
                code = 0
            except BaseException as e:
                print("child:", repr(e), file=sys.stderr)
            finally:
                os._exit(code)
        deadline = time.monotonic() + 60
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            assert time.monotonic() < deadline, "child hung"
            time.sleep(0.05)
        assert os.waitstatus_to_exitcode(status) == 0, status
        report = job.end()
        assert report.gpus[0].samples > 5
        mon.close()
        print("ok")
        """,
        timeout=120,
    )
    assert "ok" in out.stdout


def test_lost_gpu_mid_job_is_reported_and_the_others_complete() -> None:
    # faulty.json: GPU 0 falls off the bus at t = 2 s; GPU 1 has no power
    # reading (NO_PERMISSION) but an energy counter; GPUs 2 and 3 are healthy.
    out = run_python(
        """
        import time
        import algalon

        mon = algalon.Monitor(interval=0.1)
        with mon.job("survives") as job:
            time.sleep(3.0)
        r = job.report
        lost, nopower, slow, healthy = r.gpus
        assert lost.down_reason and "fell off the bus" in lost.down_reason, lost.down_reason
        assert "down during the window" in lost.energy_note, lost.energy_note
        assert lost.energy_j is not None and lost.energy_j > 0
        for g in (nopower, slow, healthy):
            assert g.down_reason is None, g
            assert g.energy_source == "counter" and g.energy_j > 0, g
        assert nopower.power_mean_w is None
        assert "down during the window" in str(r)
        assert r.to_dict()["gpus"][0]["down_reason"] == lost.down_reason
        print(r)
        mon.close()
        """,
        env={"ALGALON_FAKE_NVML_SCENARIO": str(SCENARIOS / "faulty.json")},
        timeout=120,
    )
    assert "survives" in out.stdout
