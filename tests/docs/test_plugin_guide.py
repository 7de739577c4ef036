"""The "Writing a plugin" guide, followed literally: copy the example, rename it, install it, solve with it.

Also runs the guide's Sensitivity and model plugin snippets and checks what they claim.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import torch
from docs_helpers import DOCS, EXAMPLES, code_blocks

import sciode

GUIDE = DOCS / "plugins.md"
EXAMPLE = EXAMPLES / "third_party_plugin"


def _guide_toml() -> dict:
    """The pyproject.toml fragment of step 2 of the guide."""
    block = re.search(r"```toml\n(\[project\]\nname = .*?)```",
                      re.sub(r"^ {4}", "", GUIDE.read_text(), flags=re.M), re.S)
    assert block, "step 2 of the guide lost its pyproject.toml fragment"
    return tomllib.loads(block[1])


def make_plugin(workdir: Path) -> Path:
    """Steps 1-3 of the guide, as a script would do them."""
    guide = _guide_toml()
    dist = guide["project"]["name"]
    (entry, package), = guide["project"]["entry-points"]["sciode.plugins"].items()
    solver_name = entry
    # 1. copy, drop build leftovers, rename the package
    plugin = workdir / dist
    shutil.copytree(EXAMPLE, plugin)
    for leftover in [plugin / "build", *plugin.glob("*.egg-info")]:
        shutil.rmtree(leftover, ignore_errors=True)
    (plugin / "sciode_ssprk").rename(plugin / package)
    # 2. pyproject.toml: distribution, entry point, package
    pyproject = plugin / "pyproject.toml"
    text = pyproject.read_text()
    text = text.replace('name = "sciode-ssprk"', f'name = "{dist}"')
    text = text.replace('ssprk = "sciode_ssprk"', f'{entry} = "{package}"')
    text = text.replace('packages = ["sciode_ssprk"]', f'packages = ["{package}"]')
    pyproject.write_text(text)
    data = tomllib.loads(text)
    assert data["project"]["name"] == dist
    assert data["project"]["entry-points"]["sciode.plugins"] == {entry: package}
    assert data["tool"]["setuptools"]["packages"] == guide["tool"]["setuptools"]["packages"]
    # 3. the solver's registry name, in the code and in the tests
    init = plugin / package / "__init__.py"
    assert 'name = "ssprk3"' in init.read_text()
    init.write_text(init.read_text().replace('name = "ssprk3"', f'name = "{solver_name}"'))
    tests = plugin / "tests" / "test_ssprk.py"
    tests.rename(plugin / "tests" / f"test_{entry}.py")
    renamed = plugin / "tests" / f"test_{entry}.py"
    renamed.write_text(renamed.read_text().replace('"ssprk3"', f'"{solver_name}"'))
    return plugin


def test_guide_steps_match_the_example(tmp_path):
    """Fast check that steps 1-3 apply to the example as it is now (its names and layout)."""
    plugin = make_plugin(tmp_path)
    assert (plugin / "sciode_mysolver" / "__init__.py").is_file()
    assert 'name = "mysolver"' in (plugin / "sciode_mysolver" / "__init__.py").read_text()
    assert not list(plugin.glob("*.egg-info")) and not (plugin / "build").exists()


@pytest.mark.slow
def test_guide_followed_literally_installs_and_solves(tmp_path):
    plugin = make_plugin(tmp_path / "work")
    site = tmp_path / "site"
    # 4. install (no network: sciode itself is already installed)
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                              "--target", str(site), str(plugin)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(site)}
    listing = subprocess.run([sys.executable, "-m", "sciode.cli", "plugins"], capture_output=True, text=True,
                             env=env, timeout=120)
    assert ("mysolver  (sciode-mysolver 0.1.0)" in listing.stdout
            and "solver: mysolver" in listing.stdout), listing.stdout
    # 5. solve with it by name (the guide's snippet), then run the plugin's own tests
    snippet = code_blocks(GUIDE)[-3]
    assert '"mysolver"' in snippet
    code = snippet + "\nprint(sol.retcode.name, float(sol.u[-1, 0]))\n"
    solved = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert solved.returncode == 0, solved.stderr
    status, value = solved.stdout.split()
    assert status == "SUCCESS" and abs(float(value) - float(torch.exp(torch.tensor(-1.0)))) < 1e-6
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=plugin,
                           capture_output=True, text=True, env=env, timeout=600)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert "3 passed" in tests.stdout  # the copied plugin's own tests: the method, its tableau form, saveat


def _snippet_defining(name: str) -> str:
    return next(block for block in code_blocks(GUIDE) if f"class {name}" in block)


def test_sensitivity_plugin_snippet_registers_and_gives_the_default_gradient():
    namespace: dict = {}
    exec(_snippet_defining("LoopAutograd"), namespace)
    sciode.register_plugin(namespace["SensitivityPlugin"](), name="doc_sensitivity_snippet")
    try:
        assert "loop_autograd" in sciode.sensitivities()
        grads = []
        for sensealg in (None, "loop_autograd"):
            p = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
            prob = sciode.ODEProblem(lambda u, p, t: -p * u, torch.ones(2, dtype=torch.float64), (0.0, 1.0), p)
            sciode.solve(prob, "tsit5", sensealg=sensealg).u[-1].sum().backward()
            grads.append(p.grad)
        assert torch.equal(grads[0], grads[1])
        # d/dp of 2 exp(-p) at p = 0.7
        assert abs(float(grads[1]) + 2 * float(torch.exp(torch.tensor(-0.7, dtype=torch.float64)))) < 1e-5
    finally:
        sciode.registry.registry.unregister("doc_sensitivity_snippet")


@pytest.mark.parametrize("sensealg", [None, *sciode.sensitivities()])
def test_model_plugin_snippet_registers_and_trains_parameters(sensealg):
    namespace: dict = {}
    exec(_snippet_defining("NeuralODE"), namespace)
    sciode.register_plugin(namespace["ModelPlugin"](), name="doc_model_snippet")
    try:
        Model = sciode.models()["neural_ode_example"]

        class Field(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.linear = torch.nn.Linear(2, 2)

            def forward(self, u, p, t):
                return torch.tanh(self.linear(u))

        model = Model(Field(), sensealg=sensealg)
        x = torch.randn(5, 2)
        out = model(x)
        assert out.shape == (5, 2)
        out.square().sum().backward()
        assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.parameters())
    finally:
        sciode.registry.registry.unregister("doc_model_snippet")
