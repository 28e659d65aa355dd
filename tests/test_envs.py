"""Software environments agree with pyproject.toml, and the workflow parses without the installed package.

envs/*.yaml (conda, `--sdm conda`) and the container definition list the same requirement specifiers as
pyproject.toml's dependencies; no environment installs the package itself (`-e ../` breaks once Snakemake
copies the file into .snakemake/conda/); the docs name only flags Snakemake has.
"""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
DEPS = {canonicalize_name(r.name): r for r in map(Requirement, PYPROJECT["project"]["dependencies"])}
ENVS = sorted((REPO / "envs").glob("*.yaml"))
# not needed inside a job environment: the running Snakemake puts itself on the script's sys.path
NOT_IN_ENVS = {"snakemake"}


def _pip_section(env: dict) -> tuple[list[str], list[Requirement]]:
    pips = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pips) == 1
    options = [line for line in pips[0] if line.startswith("-")]
    return options, [Requirement(line) for line in pips[0] if not line.startswith("-")]


def _agrees(name: str, spec: SpecifierSet) -> bool:
    """An environment's specifier agrees with pyproject's: the same text, or an == pin pyproject accepts."""
    want = DEPS[name].specifier
    if str(spec) == str(want):
        return True
    pins = [s.version for s in spec if s.operator == "=="]
    return len(pins) == 1 and want.contains(pins[0], prereleases=True)


def test_envs_exist_with_a_cpu_and_a_cuda_torch():
    names = {p.name for p in ENVS}
    assert {"deepwas.yaml", "deepwas-cuda.yaml", "downloads.yaml"} <= names
    cpu_opts, cpu = _pip_section(yaml.safe_load((REPO / "envs/deepwas.yaml").read_text()))
    gpu_opts, gpu = _pip_section(yaml.safe_load((REPO / "envs/deepwas-cuda.yaml").read_text()))
    torch_cpu = next(r for r in cpu if r.name == "torch")
    torch_gpu = next(r for r in gpu if r.name == "torch")
    assert str(torch_cpu.specifier) == "==2.13.0+cpu"
    assert cpu_opts == ["--extra-index-url https://download.pytorch.org/whl/cpu"]
    assert str(torch_gpu.specifier) == "==2.13.0" and gpu_opts == []      # PyPI's Linux wheel: CUDA
    # apart from torch the two are the same environment
    assert sorted(map(str, (r for r in cpu if r.name != "torch"))) == sorted(map(str, (r for r in gpu if r.name != "torch")))


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_env_pins_agree_with_pyproject(path):
    env = yaml.safe_load(path.read_text())
    options, reqs = _pip_section(env)
    # no editable or path install: Snakemake builds the environment from a copy in .snakemake/conda/
    assert all(o.startswith("--extra-index-url https://") for o in options), (path.name, options)
    for r in reqs:
        name = canonicalize_name(r.name)
        assert name in DEPS, f"{path.name}: {r.name} is not a pyproject.toml dependency"
        assert _agrees(name, r.specifier), f"{path.name}: {r} disagrees with pyproject.toml's {DEPS[name]}"
    assert "deepwas" not in {canonicalize_name(r.name) for r in reqs}
    python = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert python and SpecifierSet(PYPROJECT["project"]["requires-python"]).contains(python[0].split("=")[-1] + ".0")


def test_full_envs_hold_every_dependency():
    for name in ("deepwas.yaml", "deepwas-cuda.yaml"):
        _, reqs = _pip_section(yaml.safe_load((REPO / "envs" / name).read_text()))
        assert {canonicalize_name(r.name) for r in reqs} == set(DEPS) - NOT_IN_ENVS, name


def test_container_pins_agree_with_pyproject():
    text = (REPO / "envs/Dockerfile").read_text()
    torch = re.search(r"torch==([0-9.]+)(\+cpu)?", text)
    assert torch and DEPS["torch"].specifier.contains(torch.group(1)), "Dockerfile: torch pin"
    assert "download.pytorch.org/whl/cpu" in text
    assert re.search(r"pip install[^\n]*\s\"?\.\[slurm\]", text), "Dockerfile installs the package with its pins"
    py = re.search(r"FROM python:(\d+\.\d+)", text)
    assert py and SpecifierSet(PYPROJECT["project"]["requires-python"]).contains(py.group(1) + ".0")


def test_nothing_unused_declared_and_imports_declared():
    """Every third-party top-level import of workflow/scripts is declared; nothing declared is unused."""
    imports = set()
    for f in (REPO / "workflow/scripts").rglob("*.py"):
        for m in re.finditer(r"^\s*(?:from|import)\s+([A-Za-z_][\w]*)", f.read_text(), flags=re.M):
            imports.add(m.group(1))
    module_of = {"pyyaml": "yaml", "google-cloud-storage": "google", "pybigwig": "pyBigWig",
                 "pyarrow": None, "snakemake": None}   # pyarrow: pandas' parquet engine; snakemake: runs the rules
    for name in DEPS:
        mod = module_of.get(name, name.replace("-", "_"))
        assert mod is None or mod in imports, f"pyproject.toml declares {name}, which nothing imports"
    assert "cola" not in imports and "cola-ml" not in DEPS
    third_party = {"numpy", "scipy", "pandas", "torch", "matplotlib", "tqdm", "yaml", "msprime", "pyBigWig",
                   "pyliftover", "boto3", "botocore", "google", "requests"}
    assert imports & third_party <= {module_of.get(n, n.replace("-", "_")) for n in DEPS} | {"botocore"}


def test_docs_name_real_flags():
    """`--sw-deployment-method` does not exist; the docs say --software-deployment-method / --sdm."""
    docs = [REPO / "README.md", *(REPO / "envs").glob("*"), *(REPO / "docs").glob("*.md"), REPO / "profiles/slurm/config.yaml"]
    for f in docs:
        assert "--sw-deployment-method" not in f.read_text(), f
    help_text = subprocess.run([sys.executable, "-m", "snakemake", "--help"], capture_output=True, text=True).stdout
    assert "--software-deployment-method" in help_text and "--sdm" in help_text
    assert "--software-deployment-method conda" in (REPO / "README.md").read_text()


def test_workflow_parses_without_the_installed_package(tmp_path):
    """The Snakefile puts workflow/scripts on sys.path: a dry run works with no deepwas on the path."""
    shutil_copy = (REPO / "tests/e2e/traits.tsv").read_text()
    (tmp_path / "traits.tsv").write_text(shutil_copy)
    blocker = (
        "import sys\n"
        "sys.path[:] = [p for p in sys.path if not p.rstrip('/').endswith('workflow/scripts')]\n"
        "try:\n    import deepwas\nexcept ImportError:\n    pass\n"
        "else:\n    raise SystemExit('deepwas still importable: ' + deepwas.__file__)\n"
        "from snakemake.cli import main\n"
        f"sys.argv = ['snakemake', '-n', '-q', '-s', {str(REPO / 'Snakefile')!r}, '--directory', {str(tmp_path)!r},"
        f" '--configfile', {str(REPO / 'tests/e2e/config.yaml')!r}]\n"
        "main()\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, env=env, cwd=tmp_path,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "deepwas still importable" not in r.stdout + r.stderr
