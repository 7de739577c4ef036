"""Plugin discovery through entry points: third-party, broken and conflicting plugins."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import sciode
import sciode.testing
from sciode.errors import PluginError
from sciode.registry import PluginWarning, Registry

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "third_party_plugin"


def make_distribution(site: Path, dist: str, module: str, source: str | None = None,
                      copy_from: Path | None = None) -> None:
    """Lay out an installed distribution by hand: a package plus its .dist-info with an entry point."""
    if copy_from is not None:
        shutil.copytree(copy_from, site / module)
    else:
        (site / module).mkdir(parents=True)
        (site / module / "__init__.py").write_text(textwrap.dedent(source or ""))
    info = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[sciode.plugins]\n{module} = {module}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith(("sciode_ssprk", "plugin_"))]:
        del sys.modules[name]


def test_third_party_plugin_is_discovered_and_solves(site, monkeypatch):
    make_distribution(site, "sciode-ssprk", "sciode_ssprk", copy_from=EXAMPLE / "sciode_ssprk")
    registry = Registry()
    monkeypatch.setattr(sys.modules["sciode.registry"], "registry", registry)
    monkeypatch.setattr(sys.modules["sciode.solve"], "registry", registry)
    assert "ssprk3" in sciode.registry.registry.table("solver")
    assert registry.plugins["sciode_ssprk"].distribution == "sciode-ssprk"
    prob = sciode.ODEProblem(lambda u, p, t: -u, torch.ones(2, dtype=torch.float64), (0.0, 1.0))
    sol = sciode.solve(prob, "ssprk3", dt=0.01)
    assert sol.retcode is sciode.ReturnCode.SUCCESS
    exact = torch.full((2,), torch.exp(torch.tensor(-1.0)).item(), dtype=torch.float64)
    torch.testing.assert_close(sol.u[-1], exact, rtol=1e-6, atol=0)
    # the plugin's own conformance tests pass against this registry
    sciode.testing.assert_convergence_order("ssprk3", 3)
    # the tableau version (public generic stepper, no interpolant) with saveat between steps
    sciode.testing.assert_convergence_order("ssprk3_tableau", 3)
    between = sciode.solve(prob, "ssprk3_tableau", dt=0.01, saveat=[0.0, 0.333, 0.5, 1.0])
    torch.testing.assert_close(between.u[:, 0], torch.exp(-between.t), rtol=1e-5, atol=0)


def test_broken_plugin_is_skipped_with_warning(site):
    make_distribution(site, "sciode-broken", "plugin_broken", "raise ImportError('missing dependency foo')\n")
    make_distribution(site, "sciode-malformed", "plugin_malformed", """
        import sciode
        @sciode.hookimpl
        def sciode_add_solvers():
            return [object]
    """)
    registry = Registry()
    with pytest.warns(PluginWarning) as caught:
        solvers = registry.table("solver")
    messages = " ".join(str(w.message) for w in caught)
    assert "plugin_broken" in messages and "missing dependency foo" in messages
    assert "plugin_malformed" in messages and "not a subclass" in messages
    assert "rk4" in solvers  # the built-ins still work
    assert registry.plugins["plugin_broken"].error
    out = subprocess.run([sys.executable, "-m", "sciode.cli", "plugins"], capture_output=True, text=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(site)})
    assert out.returncode == 0
    assert "BROKEN" in out.stdout and "plugin_broken" in out.stdout and "rk4" in out.stdout


def test_plugin_hook_without_name_is_skipped(site):
    make_distribution(site, "sciode-noname", "plugin_noname", """
        import sciode
        class NoName(sciode.Solver):
            pass
        @sciode.hookimpl
        def sciode_add_solvers():
            return [NoName]
    """)
    with pytest.warns(PluginWarning, match="without a non-empty string .name"):
        Registry().table("solver")


IMPOSTOR = """
    import sciode

    class Impostor(sciode.Solver):
        \"\"\"Claims tsit5's name and gets u(1) = 0.3487 for u' = -u (ten Euler steps).\"\"\"
        name = "tsit5"
        order = 1

        def step(self, rhs, t, u, dt, state):
            return sciode.StepResult(u + dt * rhs(t, u), None, None, None)

    class Fine(sciode.Solver):
        name = "impostor_euler"
        order = 1

        def step(self, rhs, t, u, dt, state):
            return sciode.StepResult(u + dt * rhs(t, u), None, None, None)

    @sciode.hookimpl
    def sciode_add_solvers():
        return [Impostor, Fine]
"""


def test_name_conflict_names_both_distributions(site):
    make_distribution(site, "sciode-ssprk", "sciode_ssprk", copy_from=EXAMPLE / "sciode_ssprk")
    make_distribution(site, "sciode-other", "plugin_other", """
        import sciode
        class Impostor(sciode.Solver):
            name = "ssprk3"
            order = 1
            def step(self, rhs, t, u, dt, state):
                return sciode.StepResult(u, None, None, None)
        @sciode.hookimpl
        def sciode_add_solvers():
            return [Impostor]
    """)
    registry = Registry()
    assert "ssprk3" not in registry.table("solver") and "rk4" in registry.table("solver")
    with pytest.raises(PluginError) as info:
        registry.get("solver", "ssprk3", "solver")
    message = str(info.value)
    assert "ssprk3" in message and "sciode-ssprk" in message and "sciode-other" in message


@pytest.mark.parametrize("impostor_first", [True, False], ids=["impostor first on sys.path", "impostor last"])
def test_a_clash_with_a_builtin_leaves_the_registry_whole(tmp_path, monkeypatch, impostor_first):
    """A plugin claiming "tsit5": every lookup of tsit5 raises naming both, everything else works."""
    bad, other = tmp_path / "bad", tmp_path / "other"
    make_distribution(bad, "sciode-impostor", "plugin_impostor", IMPOSTOR)
    make_distribution(other, "sciode-ssprk", "sciode_ssprk", copy_from=EXAMPLE / "sciode_ssprk")
    for path in ([other, bad] if impostor_first else [bad, other]):  # the last prepended comes first
        monkeypatch.syspath_prepend(str(path))
    registry = Registry()
    monkeypatch.setattr(sys.modules["sciode.registry"], "registry", registry)
    monkeypatch.setattr(sys.modules["sciode.solve"], "registry", registry)
    try:
        prob = sciode.ODEProblem(lambda u, p, t: -u, torch.ones(1, dtype=torch.float64), (0.0, 1.0))
        for _ in range(3):  # the same answer on every lookup, never the impostor
            with pytest.raises(PluginError, match=r"'tsit5'.*sciode-impostor.*and.*plugin 'explicit'"):
                sciode.solve(prob, "tsit5")
        assert sciode.solve(prob, "rk4", dt=0.1).u[-1].item() == pytest.approx(0.36788, rel=1e-4)
        assert sciode.solve(prob, "impostor_euler", dt=0.1).retcode is sciode.ReturnCode.SUCCESS
        assert sciode.solve(prob, "ssprk3", dt=0.1).retcode is sciode.ReturnCode.SUCCESS
        assert "tsit5" not in sciode.solvers() and {"rk4", "dopri5", "ssprk3"} <= set(sciode.solvers())
        assert registry.conflicts("solver")["tsit5"][0].name in ("explicit", "plugin_impostor")
    finally:
        for name in [m for m in sys.modules if m.startswith(("sciode_ssprk", "plugin_"))]:
            del sys.modules[name]
    path = os.pathsep.join(str(p) for p in ([bad, other] if impostor_first else [other, bad]))
    out = subprocess.run([sys.executable, "-m", "sciode.cli", "plugins"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": path + os.pathsep + os.environ.get("PYTHONPATH", "")})
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    assert re.search(r"CONFLICT: solver name 'tsit5' is claimed by .*sciode-impostor", out.stdout), out.stdout
    assert "rk4" in out.stdout and "impostor_euler" in out.stdout


def test_sciode_plugins_into_a_closed_pipe_says_nothing():
    """``sciode plugins | head -0``: the reader is gone before the listing is written."""
    proc = subprocess.Popen([sys.executable, "-m", "sciode.cli", "plugins"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the child needs far longer than this to import sciode
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err.decode() and "BrokenPipeError" not in err.decode()
    assert proc.returncode == 1


BROKEN_CONTRACTS = {
    "no step": ("class S(sciode.Solver):\n    name = 'nostep'\n    order = 1\n", "nostep", "registration",
                r"solver 'nostep' .* breaks the solver contract: step\(rhs, t, u, dt, state\) is not implemented"),
    "adaptive without error": (
        "class S(sciode.Solver):\n    name = 'noerr'\n    order = 1\n    adaptive = True\n"
        "    def step(self, rhs, t, u, dt, state):\n"
        "        return sciode.StepResult(u + dt * rhs(t, u), None, None, None)\n",
        "noerr", "lookup", r"solver 'noerr' of plugin 'plugin_contract' .*: adaptive = True but step\(\) returned "
        r"error None"),
    "bare tensor": (
        "class S(sciode.Solver):\n    name = 'bare'\n    order = 1\n"
        "    def step(self, rhs, t, u, dt, state):\n        return u + dt * rhs(t, u)\n",
        "bare", "lookup", r"solver 'bare' of plugin 'plugin_contract' .*: step\(\) returned Tensor; it must return "
        r"sciode.StepResult"),
    "order zero": ("class S(sciode.Solver):\n    name = 'zero'\n"
                   "    def step(self, rhs, t, u, dt, state):\n        return sciode.StepResult(u, None, None, None)\n",
                   "zero", "registration", r"order must be a positive number; it is 0"),
    "sensitivity without solve": ("class S(sciode.Sensitivity):\n    name = 'nosolve'\n", "nosolve", "registration",
                                  r"sensitivity 'nosolve' .* solve\(problem, solver, options\) is not implemented"),
}


@pytest.mark.parametrize("source, name, when, message", BROKEN_CONTRACTS.values(), ids=BROKEN_CONTRACTS.keys())
def test_a_broken_contract_is_a_plugin_error_naming_plugin_and_contract(site, source, name, when, message):
    hook = "sciode_add_sensitivities" if "Sensitivity" in source else "sciode_add_solvers"
    make_distribution(site, "sciode-contract", "plugin_contract",
                      f"import sciode\n{source}\n@sciode.hookimpl\ndef {hook}():\n    return [S]\n")
    registry = Registry()
    if when == "registration":
        with pytest.warns(PluginWarning, match=message):
            registry.load()
        assert registry.plugins["plugin_contract"].error and "rk4" in registry.table("solver")
        return
    with pytest.raises(PluginError, match=message):
        registry.get("solver", name, "solver")
    with pytest.raises(PluginError, match=message):  # and on every later lookup
        registry.get("solver", name, "solver")
    registry.get("solver", "tsit5", "solver")


def test_register_plugin_in_code():
    class Plugin:
        class Twice(sciode.Solver):
            name = "test_euler_twice"
            order = 1

            def step(self, rhs, t, u, dt, state):
                return sciode.StepResult(u + dt * rhs(t, u), None, None, None)

        @sciode.hookimpl
        def sciode_add_solvers(self):
            return [self.Twice]

    sciode.register_plugin(Plugin(), name="in_code")
    try:
        assert "test_euler_twice" in sciode.solvers()
        prob = sciode.ODEProblem(lambda u, p, t: -u, torch.ones(1), (0.0, 1.0))
        sol = sciode.solve(prob, "test_euler_twice", dt=0.1, dense=False)
        assert sol.retcode is sciode.ReturnCode.SUCCESS
    finally:
        sciode.registry.registry.unregister("in_code")
    assert "test_euler_twice" not in sciode.solvers()


@pytest.mark.slow
def test_pip_install_of_example_plugin(tmp_path):
    """Install the example distribution for real (pip, no network) into a target dir and use it."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--target",
                    str(target), str(EXAMPLE)], check=True, capture_output=True)
    code = ("import sciode, torch; p = sciode.ODEProblem(lambda u, p, t: -u, torch.ones(1), (0.0, 1.0)); "
            "print(sciode.solve(p, 'ssprk3', dt=0.1).retcode.name)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(target)})
    assert out.stdout.strip() == "SUCCESS", out.stderr
