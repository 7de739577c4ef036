"""Plugin discovery through entry points: third-party, broken and conflicting plugins."""
from __future__ import annotations

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


def make_distribution(site: Path, dist: str, module: str, source: str | None = None, copy_from: Path | None = None) -> None:
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
    torch.testing.assert_close(sol.u[-1], torch.full((2,), torch.exp(torch.tensor(-1.0)).item(), dtype=torch.float64), rtol=1e-6, atol=0)
    # the plugin's own conformance tests pass against this registry
    sciode.testing.assert_convergence_order("ssprk3", 3)


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


def test_name_conflict_names_both_distributions(site):
    make_distribution(site, "sciode-ssprk", "sciode_ssprk", copy_from=EXAMPLE / "sciode_ssprk")
    make_distribution(site, "sciode-other", "plugin_other", """
        import sciode
        class Impostor(sciode.Solver):
            name = "ssprk3"
        @sciode.hookimpl
        def sciode_add_solvers():
            return [Impostor]
    """)
    with pytest.raises(PluginError) as info:
        Registry().table("solver")
    message = str(info.value)
    assert "ssprk3" in message and "sciode-ssprk" in message and "sciode-other" in message


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
        sol = sciode.solve(sciode.ODEProblem(lambda u, p, t: -u, torch.ones(1), (0.0, 1.0)), "test_euler_twice", dt=0.1, dense=False)
        assert sol.retcode is sciode.ReturnCode.SUCCESS
    finally:
        sciode.registry.registry.unregister("in_code")
    assert "test_euler_twice" not in sciode.solvers()


@pytest.mark.slow
def test_pip_install_of_example_plugin(tmp_path):
    """Install the example distribution for real (pip, no network) into a target dir and use it."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--target", str(target),
                    str(EXAMPLE)], check=True, capture_output=True)
    code = ("import sciode, torch; p = sciode.ODEProblem(lambda u, p, t: -u, torch.ones(1), (0.0, 1.0)); "
            "print(sciode.solve(p, 'ssprk3', dt=0.1).retcode.name)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(target)})
    assert out.stdout.strip() == "SUCCESS", out.stderr
