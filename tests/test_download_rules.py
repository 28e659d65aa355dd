"""The download rules end to end: snakemake runs them against loopback S3 (moto) and HTTP servers."""
from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).parents[1]
DATA = Path(__file__).parent / "data"
WINDOWS = ["chr22_16000001_19000001", "chr22_17000001_20000001"]

pytestmark = pytest.mark.skipif(
    "download" not in (yaml.safe_load((ROOT / "config/schema/config.schema.yaml").read_text()).get("properties") or {}),
    reason="config schema has no `download` object yet (lead adds it); the rules need download.s3_endpoint here",
)


TARGETS = ["resources/locks/ukbb_ld.lock.tsv", "resources/locks/tracks.lock.tsv", "results/liftover/chr22.tsv.gz"]


def _snakemake(work, *extra, targets=TARGETS):
    return subprocess.run([sys.executable, "-m", "snakemake", *targets, "-s", str(ROOT / "Snakefile"), "--cores", "1",
                           "--configfile", "config/ukbb.yaml", "dl.yaml", *extra],
                          cwd=work, capture_output=True, text=True, timeout=300)


def _planned(out: str) -> dict[str, int]:
    """Job counts of a dry run's 'Job stats' table ({} when nothing is to be done)."""
    if "Job stats:" not in out:
        assert "Nothing to be done" in out, out[-3000:]
        return {}
    table = out.split("Job stats:")[1].split("total")[0].splitlines()
    return {ln.split()[0]: int(ln.split()[1]) for ln in table[3:] if ln.strip()}


def _sha256s(root: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(".")}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_download_rules_end_to_end(tmp_path, monkeypatch):
    import boto3
    import scipy.sparse as sp
    from moto.server import ThreadedMotoServer

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    mp = _port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=mp, verbose=False)
    moto.start()
    srv_dir = tmp_path / "srv"
    (srv_dir / "experiments" / "ENCSR000TST").mkdir(parents=True)
    (srv_dir / "files" / "ENCFF000FCA" / "@@download").mkdir(parents=True)
    shutil.copy(DATA / "downloads" / "ENCFF000FCA.bigWig", srv_dir / "files" / "ENCFF000FCA" / "@@download" / "ENCFF000FCA.bigWig")
    shutil.copy(DATA / "downloads" / "ENCFF000FCA.bigWig", srv_dir / "t.bw")
    shutil.copy(DATA / "liftover" / "toy.over.chain.gz", srv_dir / "chain.gz")
    shutil.copy(DATA / "downloads" / "encode_ENCSR000TST.json", srv_dir / "experiments" / "ENCSR000TST" / "index.html")
    # a FANTOM5-like data-hub folder: http.server lists it with percent-encoded hrefs, like the real hub
    (srv_dir / "hub").mkdir()
    for strand in ("fwd", "rev"):
        shutil.copy(DATA / "downloads" / "ENCFF000FCA.bigWig", srv_dir / "hub" / f"thymus, adult, pool1.CNhs90001.10027-101D9.hg38.tpm.{strand}.bw")
    shutil.copy(DATA / "downloads" / "ENCFF000FCA.bigWig", srv_dir / "hub" / "thymus, fetal, pool1.CNhs90004.1-1.hg38.tpm.fwd.bw")

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(srv_dir), **k)

        def log_message(self, *a):
            pass

        def translate_path(self, path):
            return super().translate_path(path.split("?")[0])

    hp = _port()
    http = ThreadingHTTPServer(("127.0.0.1", hp), Handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        endpoint, base = f"http://127.0.0.1:{mp}", f"http://127.0.0.1:{hp}"
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket="broad-alkesgroup-ukbb-ld")
        for i, w in enumerate(WINDOWS):
            m = 20
            a = np.triu(np.random.default_rng(i).uniform(-0.2, 0.2, (m, m)), 1) + 0.5 * np.eye(m)
            buf = io.BytesIO()
            sp.save_npz(buf, sp.csr_matrix(a))
            start = int(w.split("_")[1])
            tab = "rsid chromosome position allele1 allele2\n" + "".join(
                f"rs{i}_{k} 22 {start + i * 1000000 + 1000 * k} A G\n" for k in range(m))
            s3.put_object(Bucket="broad-alkesgroup-ukbb-ld", Key=f"UKBB_LD/{w}.npz", Body=buf.getvalue(), ACL="public-read")
            s3.put_object(Bucket="broad-alkesgroup-ukbb-ld", Key=f"UKBB_LD/{w}.gz", Body=gzip.compress(tab.encode()), ACL="public-read")

        work = tmp_path / "work"
        shutil.copytree(ROOT / "config", work / "config")
        (work / "m").mkdir()
        (work / "m" / "ucsc.tsv").write_text(f"name\tkind\talignment\turl\nphyloPtest\tphyloP\ttest\t{base}/t.bw\n")
        (work / "m" / "fantom.tsv").write_text("# header comment\nname\ttissue\tstrand\tlibrary\tfile\tstatus\n"
                                               "fantom_thymus_rev\tthymus, adult, pool1\trev\t\t\tunresolved\n"
                                               "fantom_thymus_fwd\tthymus adult\tfwd\tCNhs90001\t\tlibrary_known\n")
        (work / "m" / "encode.tsv").write_text("name\tassay\ttarget\taccession\nencode_CTCF\tTF_ChIP-seq\tCTCF\tENCSR000TST\n")
        man = pd.DataFrame({"name": WINDOWS + ["chr6_28000001_31000001"], "chromosome": ["22", "22", "6"],
                            "start": [16000001, 17000001, 28000001], "end": [19000001, 20000001, 31000001],
                            "kind": ["npz", "npz", "npz2"]})
        man.to_csv(work / "m" / "windows.tsv", sep="\t", index=False)
        (work / "dl.yaml").write_text(yaml.safe_dump({
            "ld": {"manifest": "m/windows.tsv"},
            "download": {"s3_endpoint": endpoint, "chromosomes": ["22", "6"], "retries": 1, "backoff_s": 0,
                         "ucsc_manifest": "m/ucsc.tsv", "fantom_manifest": "m/fantom.tsv",
                         "encode_manifest": "m/encode.tsv", "encode_base_url": base, "chain_url": f"{base}/chain.gz",
                         "fantom_base_url": f"{base}/hub/"},
        }))
        r = _snakemake(work)
        assert r.returncode == 0, r.stderr[-4000:]
    finally:
        http.shutdown()
        http.server_close()
        moto.stop()

    lock = pd.read_csv(work / "resources/locks/ukbb_ld.lock.tsv", sep="\t")
    assert list(lock["name"]) == [f"{w}.{e}" for w in WINDOWS for e in ("npz", "gz")]
    assert set(lock["verified"]) == {"size+etag"}
    excluded = pd.read_csv(work / "resources/ukbb/ld_excluded_windows.tsv", sep="\t")
    assert list(excluded["name"]) == ["chr6_28000001_31000001"]
    tracks = pd.read_csv(work / "resources/locks/tracks.lock.tsv", sep="\t")
    assert list(tracks["name"]) == ["phyloPtest", "fantom_thymus_rev", "fantom_thymus_fwd", "encode_CTCF"]
    assert tracks.loc[3, "verified"] == "size+md5" and tracks.loc[3, "file"] == "ENCFF000FCA"
    assert tracks.loc[2, "file"] == "thymus, adult, pool1.CNhs90001.10027-101D9.hg38.tpm.fwd.bw"  # by CNhs id
    # the FANTOM row was resolved from the hub listing by its description; the lock pins the name and CNhs id
    assert tracks.loc[1, "file"] == "thymus, adult, pool1.CNhs90001.10027-101D9.hg38.tpm.rev.bw"
    assert tracks.loc[1, "library"] == "CNhs90001" and tracks.loc[1, "source"].startswith(f"{base}/hub/thymus%2C%20adult")
    assert list(pd.read_csv(work / "resources/tracks/manifest.tsv", sep="\t")["name"]) == list(tracks["name"])
    rep = json.loads((work / "results/liftover/chr22.report.json").read_text())
    assert rep["variants"] == 40 and rep["unknown_chrom"] == 40  # the toy chain has chr1 only: all NA, none dropped
    # the LD windows are in ld.dir but are no Snakemake output: nothing can delete them
    ld = work / "resources/ukbb/ld"
    assert sorted(p.name for p in ld.iterdir() if not p.name.startswith(".")) == sorted(f"{w}.{e}" for w in WINDOWS for e in ("npz", "gz"))
    before = {d: _sha256s(work / d) for d in ("resources/ukbb/ld", "resources/tracks", "resources/chain")}
    assert len(before["resources/tracks"]) == 8  # 4 bigWigs, ENCODE resolution, FANTOM index, manifest, sizes

    # (1) settings that do not change content, and an update of every download script and of the package:
    # the servers are gone (offline), the dry run plans no job and the real run does nothing
    cfg = yaml.safe_load((work / "dl.yaml").read_text())
    cfg["download"].update(retries=7, backoff_s=0.25)
    (work / "dl.yaml").write_text(yaml.safe_dump(cfg))
    scripts = sorted((ROOT / "workflow" / "scripts").glob("download_*.py")) + [ROOT / "workflow/scripts/deepwas/downloads.py"]
    times = {p: p.stat() for p in scripts}
    try:
        for p in scripts:
            p.touch()
        dry = _snakemake(work, "-n")
        assert dry.returncode == 0, dry.stderr[-3000:]
        # only the offline merges of lock records whose scripts were touched (they rewrite the same TSVs)
        assert set(_planned(dry.stdout + dry.stderr)) <= {"download_ukbb_ld_lock", "download_tracks_lock"}
        r = _snakemake(work)
        assert r.returncode == 0, r.stderr[-3000:]
        assert "liftover_ld_variants" not in r.stderr  # identical lock TSVs: nothing downstream reruns
    finally:
        for p, st in times.items():
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert {d: _sha256s(work / d) for d in before} == before

    cfg["download"].update(retries=1, backoff_s=0)  # settings only: nothing at all to do now
    (work / "dl.yaml").write_text(yaml.safe_dump(cfg))
    dry = _snakemake(work, "-n")
    assert _planned(dry.stdout + dry.stderr) == {}

    # (2) the lock records are lost (or the windows were put there by hand): the window jobs rerun offline,
    # take the files verified before from their sidecars, and leave every byte as it was
    for w in WINDOWS:
        (work / f"resources/locks/ukbb_ld/{w}.json").unlink()
    (work / "resources/locks/ukbb_ld.lock.tsv").unlink()
    dry = _snakemake(work, "-n")
    assert _planned(dry.stdout + dry.stderr).get("download_ukbb_ld_window") == 2
    r = _snakemake(work)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _sha256s(ld) == before["resources/ukbb/ld"]

    # (3) one window cannot be verified offline (no sidecar, no lock, no network) and fails; the other is taken;
    # no window file is deleted, the failed one included
    for w in WINDOWS:
        (work / f"resources/locks/ukbb_ld/{w}.json").unlink()
    (work / "resources/locks/ukbb_ld.lock.tsv").unlink()
    for ext in ("npz", "gz"):
        (ld / f".{WINDOWS[1]}.{ext}.verified.json").unlink()
    r = _snakemake(work, "--keep-going")
    assert r.returncode != 0 and f"{WINDOWS[1]}" in r.stderr
    assert (work / f"resources/locks/ukbb_ld/{WINDOWS[0]}.json").exists()
    assert not (work / f"resources/locks/ukbb_ld/{WINDOWS[1]}.json").exists()
    assert _sha256s(ld) == before["resources/ukbb/ld"]
