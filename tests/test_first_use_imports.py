"""A daemon imports the compiled loops its new graph's kernels need on a worker thread before
it answers the registration, never on its event loop inside a step
(`devices.kernels.loop_loader.imports_on_first_call`, `scheduler.worker_service`).

Each case runs in a fresh interpreter: this one has long imported the loops."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from actorflow.processes import child_env

LOOPS = "devices.kernels.f32_loops"


# a child that has not finished by then prints every thread's stack and exits (a hang reads as
# a failure with its stacks, not a bare timeout)
_WATCHDOG = "import faulthandler; faulthandler.dump_traceback_later(90, exit=True)\n"


def _run(script: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _WATCHDOG + textwrap.dedent(script)],
                         env=child_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-8000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_float32_tanh_graph_names_the_loops_at_compile_time_and_only_it() -> None:
    r = _run(f"""
        import json, sys
        import numpy as np
        import actorflow as af
        from devices.kernels import loop_loader
        from scheduler.runtime import LocalRuntime

        def pending_after(build):
            g = af.Graph()
            with g.as_default():
                x = af.placeholder(af.float32, (4, 8))
                y = build(x)
            rt = LocalRuntime()
            rt.compile(g.as_graph_def(), feeds=[x.name], fetches=[y.name], targets=[])
            return loop_loader.first_use_pending()

        plain = pending_after(lambda x: x * 2.0 + 1.0 - x)  # NumPy's kernels only
        f64 = pending_after(lambda x: af.tanh(af.cast(x, af.float64)))
        f32 = pending_after(lambda x: af.tanh(x))
        before = "{LOOPS}" in sys.modules
        loop_loader.import_first_use()
        print(json.dumps({{"plain": plain, "f64": f64, "f32": f32, "before": before,
                          "after": "{LOOPS}" in sys.modules,
                          "cleared": not loop_loader.first_use_pending()}}))
    """)
    assert r == {"plain": False, "f64": False, "f32": True, "before": False, "after": True,
                 "cleared": True}


def test_a_worker_daemon_imports_them_off_its_event_loop_and_the_values_are_the_loops() -> None:
    r = _run(f"""
        import json, sys, threading
        import numpy as np
        importers = []
        # the loops' module is imported with importlib (no audit event), numba with it
        sys.addaudithook(lambda ev, args: ev == "import" and args[0] in ("numba", "{LOOPS}")
                         and importers.append(threading.current_thread().name))
        import actorflow as af
        server = af.Server.create_local_server()
        try:
            g = af.Graph()
            with g.as_default():
                x = af.placeholder(af.float32, (64, 64))
                y = af.tanh(x)
            v = np.linspace(-4, 4, 64 * 64, dtype=np.float32).reshape(64, 64)
            with af.Session(server.target, graph=g) as s:
                out = s.run(y, {{x: v}})
        finally:
            server.stop()
        from devices.kernels import fast_tanh
        print(json.dumps({{"importers": importers, "loaded": "{LOOPS}" in sys.modules,
                          "same": bool(np.array_equal(out, fast_tanh.tanh(v))),
                          "close": bool(np.allclose(out, np.tanh(v), atol=1e-6))}}))
    """)
    assert r["same"] and r["close"] and r["loaded"]
    assert r["importers"], "numba was never imported"
    assert not any(n.startswith("actorflow-server") for n in r["importers"]), r["importers"]


def test_an_async_session_loads_them_off_the_callers_loop() -> None:
    """The first step of a float32 tanh through the async API: another trio task keeps
    running (without the worker-thread import its longest gap was the import, ~0.9 s here;
    with it ~40 ms, the import's own stretches under the GIL)."""
    r = _run(f"""
        import json, sys, time
        import numpy as np
        import trio
        import actorflow as af
        from devices.kernels import fast_tanh

        async def main():
            g = af.Graph()
            with g.as_default():
                x = af.placeholder(af.float32, (64, 64))
                y = af.tanh(x)
            v = np.linspace(-4, 4, 64 * 64, dtype=np.float32).reshape(64, 64)
            gaps, done = [], trio.Event()

            async def ticker():
                last = time.perf_counter()
                while not done.is_set():
                    await trio.sleep(0)
                    now = time.perf_counter()
                    gaps.append(now - last)
                    last = now

            async with af.Session(graph=g) as s:
                async with trio.open_nursery() as n:
                    n.start_soon(ticker)
                    await trio.sleep(0)  # the ticker runs first
                    out = await s.run(y, {{x: v}})
                    done.set()
            return {{"max_gap": max(gaps), "loaded": "{LOOPS}" in sys.modules,
                    "same": bool(np.array_equal(out, fast_tanh.tanh(v)))}}

        print(json.dumps(trio.run(main)))
    """)
    assert r["loaded"] and r["same"]
    assert r["max_gap"] < 0.4, r
