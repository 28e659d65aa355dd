"""A real SLURM run: the e2e track scenario submitted with snakemake-executor-plugin-slurm and the example site
profile (profiles/slurm) to a one-node SLURM cluster on localhost, compared with the local run of that scenario
(the session's run of tests/e2e/tracks.yaml, tests/conftest.py tracks_run, which trains these models and more).

Needs root and Debian's slurm-wlm / munge (installed with apt-get when absent and apt is reachable). It writes
/etc/slurm/slurm.conf (the default path: the plugin's jobstep strips SLURM_CONF before its nested srun) only
when no slurm.conf exists there, declares a fake GPU (gres.conf File=/dev/null) so that the test sees which
jobs ask for one, starts munged, slurmctld and slurmd in the foreground and stops each by its process id.
Job status comes from squeue (no accounting daemon; MinJobAge keeps finished jobs visible). Skips, with the
reason, wherever any of this is not possible.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
MARKER = "# written by tests/test_slurm.py"
CONF = Path("/etc/slurm/slurm.conf")
GRES = Path("/etc/slurm/gres.conf")
SNAKEMAKE_TIMEOUT_S = 900  # hard kill of each Snakemake run


def _run(cmd, timeout, **kw):
    """subprocess.run in its own process group, killed as a group after `timeout` seconds."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, **kw)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"{cmd[:4]} ... killed after {timeout} s; output tail:\n{out[-4000:]}")
    return proc.returncode, out


def _ensure_slurm():
    """Install slurm-wlm and munge with apt when absent; return the reason to skip, or None."""
    if os.geteuid() != 0:
        return "needs root (installs and starts SLURM daemons)"
    if shutil.which("slurmctld") and shutil.which("munged") and shutil.which("sbatch"):
        return None
    if not shutil.which("apt-get"):
        return "slurm-wlm is not installed and there is no apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "slurm-wlm", "munge"]):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        except subprocess.TimeoutExpired:
            return f"{' '.join(cmd)} timed out"
        if r.returncode != 0:
            return f"{' '.join(cmd)} failed: {r.stderr.strip()[-300:]}"
    return None if shutil.which("slurmctld") else "apt-get installed no slurmctld"


def _slurm_conf(host: str, state: Path) -> str:
    return f"""{MARKER}: a one-node cluster on localhost with a fake GPU
ClusterName=deepwastest
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/d
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
SlurmctldDebug=debug
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# the profile's memory and thread requests are sized for UKBB: take the node as configured, not as measured
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=3600
SlurmctldTimeout=30
SlurmdTimeout=30
GresTypes=gpu
NodeName={host} NodeAddr=127.0.0.1 CPUs=16 RealMemory=1000000 Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


class Cluster:
    """munged, slurmctld and slurmd in the foreground; stop() ends each by pid and removes what it wrote."""

    def __init__(self, state: Path):
        self.state = state
        self.procs: list[subprocess.Popen] = []
        self.written: list[Path] = []

    def start(self):
        host = socket.gethostname().split(".")[0]
        for d in ("ctld", "d"):
            (self.state / d).mkdir(parents=True, exist_ok=True)
        CONF.parent.mkdir(parents=True, exist_ok=True)
        CONF.write_text(_slurm_conf(host, self.state))
        self.written.append(CONF)
        GRES.write_text(f"{MARKER}\nNodeName={host} Name=gpu File=/dev/null\n")
        self.written.append(GRES)
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            subprocess.run(["mungekey", "--create"], check=True, capture_output=True)
        for d in ("/run/munge", "/var/log/munge", "/var/lib/munge"):
            Path(d).mkdir(parents=True, exist_ok=True)
            shutil.chown(d, "munge", "munge")
        log = open(self.state / "daemons.out", "a")
        self.procs.append(subprocess.Popen(["munged", "-F"], user="munge", group="munge", extra_groups=[],
                                           stdout=log, stderr=subprocess.STDOUT))
        self._wait(lambda: subprocess.run(["munge", "-n"], capture_output=True).returncode == 0, "munged")
        self.procs.append(subprocess.Popen(["slurmctld", "-D", "-i"], stdout=log, stderr=subprocess.STDOUT))
        self._wait(lambda: subprocess.run(["scontrol", "ping"], capture_output=True, text=True).stdout.count("UP") > 0,
                   "slurmctld")
        self.procs.append(subprocess.Popen(["slurmd", "-D", "-N", host], stdout=log, stderr=subprocess.STDOUT))
        self._wait(lambda: "idle" in subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True,
                                                    text=True).stdout, "slurmd (node idle)")

    def _wait(self, ok, what, timeout=60):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if any(p.poll() is not None for p in self.procs):
                break
            if ok():
                return
            time.sleep(0.5)
        raise RuntimeError(f"{what} did not come up; see {self.state}/daemons.out and the slurm logs there:\n"
                           + (self.state / "daemons.out").read_text()[-2000:])

    def stop(self):
        if self.procs and self.procs[-1].poll() is None:    # jobs left by a failed run: cancel before slurmd goes
            subprocess.run(["scancel", "--user", "root"], capture_output=True, timeout=30)
            time.sleep(2)
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for f in self.written:
            if f.exists() and f.read_text().startswith(MARKER):
                f.unlink()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = _ensure_slurm()
    if reason:
        pytest.skip(f"real SLURM test: {reason}")
    for f in (CONF, GRES):
        if f.exists() and not f.read_text().startswith(MARKER):
            pytest.skip(f"real SLURM test: {f} exists (a real SLURM installation?); not overwriting it")
    for daemon in ("slurmctld", "slurmd"):
        if subprocess.run(["pgrep", "-x", daemon], capture_output=True).returncode == 0:
            pytest.skip(f"real SLURM test: a {daemon} is already running")
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        pytest.skip("real SLURM test: pip install snakemake-executor-plugin-slurm (extra: .[slurm])")
    c = Cluster(tmp_path_factory.mktemp("slurmstate"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


def _scenario(workdir: Path, device: str = "auto") -> Path:
    """tests/e2e/tracks.yaml with one objective, constant + transformer, device auto (the CPU here)."""
    cfg = yaml.safe_load((REPO / "tests/e2e/tracks.yaml").read_text())
    cfg["models"] = ["constant", "transformer"]
    cfg["objectives"] = ["deepwas"]
    cfg["train"]["device"] = device   # gpu_for requests a GPU for the transformer unless device is cpu
    cfg["priors"] = {"folds": 0}      # no out-of-chromosome fold models: the one GPU job is the transformer's train
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "tests/e2e" / cfg["traits"], workdir / cfg["traits"])
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _snakemake(workdir: Path, extra: list[str], env: dict):
    cmd = ["nice", "-n", "10", sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"), *extra]
    t0 = time.time()
    rc, out = _run(cmd, SNAKEMAKE_TIMEOUT_S, env=env)
    (workdir / "snakemake.out").write_text(out)
    assert rc == 0, out[-6000:]
    return out, time.time() - t0


def _wants_gpu(rule: str, wildcards) -> bool:
    """gpu_for (common.smk) with train.device auto: training of the transformer and of constant / GLM with the
    deepwas objective (exact likelihood), and the transformer's evaluation, prior export and h2."""
    wc = wildcards if isinstance(wildcards, str) else "_".join(wildcards.values())
    if rule in ("train", "train_fold", "train_ablation"):
        return "transformer" in wc or wc.endswith("deepwas")
    return rule in ("evaluate", "export_priors", "prior_h2") and "transformer" in wc


def _tables(workdir: Path) -> dict[str, pd.DataFrame]:
    root = workdir / "results/evaluation"
    return {str(p.relative_to(root)): pd.read_csv(p, sep="\t") for p in sorted(root.rglob("*.tsv"))}


@pytest.mark.slow
def test_real_slurm_run_matches_local_run(cluster, tmp_path, request):
    env = {**os.environ, "DEEPWAS_SLURM_PARTITION": "debug", "DEEPWAS_SLURM_ACCOUNT": "none"}
    env.pop("DEEPWAS_SLURM_GPU_PARTITION", None)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "workflow/scripts"), env.get("PYTHONPATH", "")])

    # the local run: tests/e2e/tracks.yaml, all three models with both objectives and the fold models (the
    # scenario here is its constant / transformer with the deepwas objective, device auto, no fold models);
    # requested here, after `cluster`, so that a test that skips runs no workflow
    local = request.getfixturevalue("tracks_run")

    slurm = tmp_path / "slurm"
    _scenario(slurm)
    # 4 jobs in flight (the node has 16 CPUs): most of a job's time here is sbatch, its own Snakemake and the
    # status-check interval, which overlap; the 2 real cores run the work
    out, t_slurm = _snakemake(slurm, [
        "--profile", str(REPO / "profiles/slurm"), "--jobs", "4", "--verbose",
        "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
        "--latency-wait", "5", "--max-status-checks-per-second", "5"], env)
    print(f"SLURM run {t_slurm:.0f} s")

    # every non-local job went through sbatch; the GPU only on transformer training
    calls = re.findall(r"sbatch call: (sbatch .*)", out)
    assert calls, out[-4000:]
    by_rule = {}
    for c in calls:
        rule = re.search(r"--comment '?rule_(\w+?)(?:_wildcards_([^' ]*))?'? ", c)
        assert rule, c
        by_rule.setdefault(rule.group(1), []).append((rule.group(2) or "", c))
    assert {"demo_cohort", "ld_factors", "train", "evaluate"} <= set(by_rule), sorted(by_rule)
    for rule, jobs in by_rule.items():
        for wildcards, c in jobs:
            assert ("--gpus=1" in c) == _wants_gpu(rule, wildcards), c
            assert "--gres" not in c and "-p debug" in c, c
            assert "-A " not in c, c     # DEEPWAS_SLURM_ACCOUNT=none: --slurm-no-account
    # threads and runtime come from the workflow profile (profiles/default): train asks for 8 CPUs
    train_calls = [c for _, c in by_rule["train"]]
    assert all("--cpus-per-task=8" in c for c in train_calls), train_calls
    assert all(" -t 2400 " in c for w, c in by_rule["train"] if "constant" in w), train_calls
    assert all(" -t 1440 " in c for w, c in by_rule["train"] if "transformer" in w), train_calls

    # the controller ran those jobs (finished jobs stay listed for MinJobAge), the GPU only on the transformer
    jobs = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True, check=True).stdout
    jobs = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in jobs.splitlines() if line.strip()]
    assert len(jobs) == len(calls), (len(jobs), len(calls))
    assert all(j["JobState"] == "COMPLETED" for j in jobs), [(j["Comment"], j["JobState"]) for j in jobs]
    gpu_jobs = sorted(j["Comment"] for j in jobs if "gpu" in j.get("TresPerJob", ""))
    assert gpu_jobs == sorted(f"rule_{rule}_wildcards_{w}" for rule, ws in by_rule.items() for w, _ in ws
                              if _wants_gpu(rule, w)), gpu_jobs
    assert "rule_evaluate_wildcards_tracked_transformer_deepwas" in gpu_jobs, gpu_jobs
    ctld_log = (cluster.state / "slurmctld.log").read_text()
    assert len(re.findall(r"_job_complete: JobId=\d+ done", ctld_log)) == len(calls)

    # same results as the local run, for the models and objective trained here (the local run has more: the
    # summary's other rows and their per-window tables are left out)
    a, b = _tables(local), _tables(slurm)
    assert set(b) <= set(a) and len(b) >= 3, (sorted(a), sorted(b))
    runs = set(zip(b["summary.tsv"]["model"], b["summary.tsv"]["objective"]))
    assert runs == {("constant", "deepwas"), ("transformer", "deepwas"), ("oracle", "truth")}, runs
    for name in b:
        x, y = a[name], b[name]
        if name == "summary.tsv":   # sorted by delta_nll: the other runs' rows out, the order kept
            x = x[[r in runs for r in zip(x["model"], x["objective"])]].reset_index(drop=True)
        assert list(x.columns) == list(y.columns) and len(x) == len(y), name
        for col in x.columns:
            if pd.api.types.is_numeric_dtype(x[col]):
                assert ((x[col] - y[col]).abs() <= 1e-6 * (1 + x[col].abs())).all(), (name, col, x[col], y[col])
            else:
                assert (x[col] == y[col]).all(), (name, col)


# --- the profiles without a cluster: dry runs (need the plugin, not SLURM) ---

def _dry_run(tmp_path, env_extra: dict, drop=("DEEPWAS_SLURM_PARTITION", "DEEPWAS_SLURM_ACCOUNT",
                                               "DEEPWAS_SLURM_GPU_PARTITION"), device: str = "auto"):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    _scenario(tmp_path, device)
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_extra)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "workflow/scripts"), env.get("PYTHONPATH", "")])
    return _run([sys.executable, "-m", "snakemake", "-n", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
                 "--configfile", str(tmp_path / "config.yaml"), "--profile", str(REPO / "profiles/slurm")], 300,
                env=env)


def _planned(out: str) -> list[tuple[str, dict, dict]]:
    """(rule, wildcards, resources) of every job a dry run prints."""
    jobs = []
    for block in re.split(r"\n(?=\[.*\]\n(?:local)?rule )", out):
        m = re.search(r"^(?:local)?rule (\w+):", block, flags=re.M)
        res = re.search(r"^\s+resources: (.*)$", block, flags=re.M)
        if not m or not res:
            continue
        wc = re.search(r"^\s+wildcards: (.*)$", block, flags=re.M)
        parse = lambda s: dict(kv.split("=", 1) for kv in s.split(", "))  # noqa: E731
        jobs.append((m.group(1), parse(wc.group(1)) if wc else {}, parse(res.group(1))))
    return jobs


def test_site_profile_names_the_missing_variables(tmp_path):
    rc, out = _dry_run(tmp_path, {})
    assert rc != 0 and "DEEPWAS_SLURM_PARTITION is not set" in out, out[-2000:]
    rc, out = _dry_run(tmp_path, {"DEEPWAS_SLURM_PARTITION": "cpuq"})
    assert rc != 0 and "DEEPWAS_SLURM_ACCOUNT is not set" in out, out[-2000:]


def test_profiles_plan_gpus_partitions_and_sizes(tmp_path):
    rc, out = _dry_run(tmp_path, {"DEEPWAS_SLURM_PARTITION": "cpuq", "DEEPWAS_SLURM_ACCOUNT": "lab",
                                  "DEEPWAS_SLURM_GPU_PARTITION": "gpuq"})
    assert rc == 0, out[-3000:]
    jobs = _planned(out)
    train = [(w, r) for rule, w, r in jobs if rule == "train"]
    assert len(train) == 2 and len(jobs) > 15
    for rule, w, r in jobs:
        gpu = _wants_gpu(rule, w)
        assert r.get("gpu", "0") == ("1" if gpu else "0"), (rule, w, r)
        assert r["slurm_partition"] == ("gpuq" if gpu else "cpuq") and r["slurm_account"] == "lab", (rule, r)
    gpu_rules = {(rule, w.get("model"), w.get("objective")) for rule, w, r in jobs if r.get("gpu", "0") != "0"}
    assert {("train", "constant", "deepwas"), ("train", "transformer", "deepwas"),
            ("evaluate", "transformer", "deepwas")} <= gpu_rules, gpu_rules
    assert not {g for g in gpu_rules if g[0] == "evaluate" and g[1] == "constant"}, gpu_rules
    # workflow profile sizes (attempt 1) and the site profile's defaults for the rest
    sizes = {rule: (r["runtime"], r["mem_mb"]) for rule, w, r in jobs if rule != "train"}
    assert sizes["ld_factors"] == ("720", "32000") and sizes["summary"] == ("30", "2000")
    assert {(w["model"], r["runtime"], r["mem_mb"]) for w, r in train} == {("constant", "2400", "32000"),
                                                                          ("transformer", "1440", "64000")}


def test_device_cpu_plans_no_gpu(tmp_path):
    """train.device cpu: no job asks for a GPU (training, evaluation, export and h2 all run on the CPU)."""
    rc, out = _dry_run(tmp_path, {"DEEPWAS_SLURM_PARTITION": "cpuq", "DEEPWAS_SLURM_ACCOUNT": "lab",
                                  "DEEPWAS_SLURM_GPU_PARTITION": "gpuq"}, device="cpu")
    assert rc == 0, out[-3000:]
    jobs = _planned(out)
    assert {"train", "evaluate"} <= {rule for rule, _, _ in jobs}
    assert all(r.get("gpu", "0") == "0" and r["slurm_partition"] == "cpuq" for _, _, r in jobs), jobs
