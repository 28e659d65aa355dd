"""Downloads against loopback servers only: moto (S3), gcp-storage-emulator (GCS), http.server (HTTP)."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from deepwas import downloads as dl
from deepwas import encode

DATA = Path(__file__).parent / "data" / "downloads"
BUCKET = "broad-alkesgroup-ukbb-ld"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def _demo_window(seed: int) -> tuple[bytes, bytes]:
    """A demo-format window: scipy.sparse upper triangle (0.5 diagonal) as .npz, and its variant table .gz."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    m = 40
    a = np.triu(rng.uniform(-0.3, 0.3, (m, m)), 1) + 0.5 * np.eye(m)
    buf = io.BytesIO()
    sp.save_npz(buf, sp.csr_matrix(a))
    table = "".join(f"rs{seed}{i}\t22\t{16000000 + 100 * i}\tA\tG\n" for i in range(m)).encode()
    return buf.getvalue(), gzip.compress(table, mtime=0)


# ----------------------------------------------------------------------------------------------- S3
@pytest.fixture(scope="module")
def s3():
    import os

    from moto.server import ThreadedMotoServer

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        os.environ.setdefault(k, v)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    import boto3

    admin = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    admin.create_bucket(Bucket=BUCKET)
    # public like the real bucket: anonymous (unsigned) reads and listing allowed
    admin.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject", "s3:ListBucket"],
         "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]}]}))
    objects = {}
    for i, w in enumerate(["chr22_16000001_19000001", "chr22_17000001_20000001"]):
        npz, gz = _demo_window(i)
        objects[f"UKBB_LD/{w}.npz"], objects[f"UKBB_LD/{w}.gz"] = npz, gz
    objects["UKBB_LD/chr6_28000001_31000001.npz2"] = b"long-range"
    for k, v in objects.items():
        admin.put_object(Bucket=BUCKET, Key=k, Body=v, ACL="public-read")
    yield endpoint, objects
    server.stop()


def _recording_client(endpoint):
    client = dl.s3_client(endpoint)
    sent = []
    client.meta.events.register("before-send.s3.GetObject", lambda request, **kw: sent.append(dict(request.headers)))
    return client, sent


def test_s3_unsigned_window_download_and_lock(s3, tmp_path):
    endpoint, objects = s3
    client, sent = _recording_client(endpoint)
    w = "chr22_16000001_19000001"
    recs = dl.fetch_ukbb_ld_window(w, tmp_path / f"{w}.npz", tmp_path / f"{w}.gz", client=client, progress=False)
    assert (tmp_path / f"{w}.npz").read_bytes() == objects[f"UKBB_LD/{w}.npz"]
    assert (tmp_path / f"{w}.gz").read_bytes() == objects[f"UKBB_LD/{w}.gz"]
    assert [r["name"] for r in recs] == [f"{w}.npz", f"{w}.gz"]
    assert recs[0]["source"] == f"s3://{BUCKET}/UKBB_LD/{w}.npz"
    assert recs[0]["size"] == len(objects[f"UKBB_LD/{w}.npz"])
    assert recs[0]["md5"] == _md5(objects[f"UKBB_LD/{w}.npz"])
    assert recs[0]["verified"] == "size+etag"
    assert all("Authorization" not in h for h in sent)  # unsigned requests
    assert not list(tmp_path.glob(".*part*"))
    # the lock records merge in manifest order
    paths = []
    for r in recs:
        dl.write_lock_record(tmp_path / f"{r['name']}.lock.json", r)
        paths.append(tmp_path / f"{r['name']}.lock.json")
    df = dl.merge_lock_records(paths, tmp_path / "ld.lock.tsv", order=[f"{w}.gz", f"{w}.npz"])
    back = pd.read_csv(tmp_path / "ld.lock.tsv", sep="\t")
    assert list(back["name"]) == [f"{w}.gz", f"{w}.npz"] and list(df.columns[:4]) == ["name", "source", "resolved", "size"]


class _Dying(dl.S3Remote):
    """Simulates a job killed after `k` bytes: the stream breaks and nothing retries."""

    k = 1000

    def stream(self, start, info):
        for block in super().stream(start, info):
            yield block[: self.k]
            raise ConnectionError("killed")


def test_s3_killed_download_resumes_with_range(s3, tmp_path):
    endpoint, objects = s3
    key = "UKBB_LD/chr22_17000001_20000001.npz"
    dest = tmp_path / "w.npz"
    with pytest.raises(dl.DownloadError, match="rerun to resume"):
        dl.fetch(_Dying(BUCKET, key, endpoint_url=endpoint), dest, retries=0, progress=False)
    assert not dest.exists()
    assert (tmp_path / ".w.npz.part").stat().st_size == 1000
    client, sent = _recording_client(endpoint)
    rec = dl.fetch(dl.S3Remote(BUCKET, key, client=client), dest, progress=False)
    assert [h.get("Range") for h in sent] in (["bytes=1000-"], [b"bytes=1000-"])
    assert _md5(dest.read_bytes()) == _md5(objects[key]) == rec["md5"]
    assert not (tmp_path / ".w.npz.part").exists()


class _Corrupting(dl.S3Remote):
    def stream(self, start, info):
        for block in super().stream(start, info):
            yield bytes([block[0] ^ 0xFF]) + block[1:]


def test_s3_corrupted_object_fails_verification(s3, tmp_path):
    endpoint, _ = s3
    key = "UKBB_LD/chr22_16000001_19000001.gz"
    with pytest.raises(dl.VerificationError, match=rf"s3://{BUCKET}/{key}: ETag/md5 mismatch: expected [0-9a-f]{{32}}, got"):
        dl.fetch(_Corrupting(BUCKET, key, endpoint_url=endpoint), tmp_path / "x.gz", progress=False)
    assert not list(tmp_path.iterdir())  # neither the file nor a partial one is left to be trusted


def test_s3_missing_key_is_named(s3, tmp_path):
    endpoint, _ = s3
    with pytest.raises(dl.MissingObjectError, match=rf"s3://{BUCKET}/UKBB_LD/chr1_1_3000001.npz: no such key .UKBB_LD/chr1_1_3000001.npz. in bucket"):
        dl.fetch_ukbb_ld_window("chr1_1_3000001", tmp_path / "a.npz", tmp_path / "a.gz", endpoint_url=endpoint,
                                retries=3, backoff=0, progress=False)


def test_s3_access_denied_is_readable(s3, tmp_path):
    """A private object read unsigned: a 403 names bucket and key and what to do, is not retried, and does not
    surface as a botocore ClientError."""
    import boto3

    endpoint, _ = s3
    admin = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    admin.create_bucket(Bucket="private-ld")
    admin.put_object(Bucket="private-ld", Key="UKBB_LD/chr1_1_3000001.npz", Body=b"secret")
    import time

    t0 = time.monotonic()
    with pytest.raises(dl.AccessDeniedError) as err:
        dl.fetch_ukbb_ld_window("chr1_1_3000001", tmp_path / "a.npz", tmp_path / "a.gz", bucket="private-ld",
                                endpoint_url=endpoint, retries=3, backoff=5, progress=False)
    assert time.monotonic() - t0 < 5  # not retried (the first back-off alone would wait 5 s)
    msg = str(err.value)
    assert "bucket 'private-ld'" in msg and "key 'UKBB_LD/chr1_1_3000001.npz'" in msg and "403" in msg
    assert "requester-pays" in msg and "ld.source: local" in msg
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no ClientError traceback
    assert not list(tmp_path.iterdir())
    # a 403 on the ranged GET of a resume is named the same way
    remote = dl.S3Remote("private-ld", "UKBB_LD/chr1_1_3000001.npz", endpoint_url=endpoint)
    with pytest.raises(dl.AccessDeniedError, match="on GetObject"):
        list(remote.stream(0, dl.RemoteInfo(size=6)))
    with pytest.raises(dl.MissingObjectError, match=r"s3://nope-bucket/k: no such key 'k' in bucket 'nope-bucket' \(404\)"):
        dl.S3Remote("nope-bucket", "k", endpoint_url=endpoint).stat()


def test_s3_resume_of_changed_object_restarts(s3, tmp_path):
    """S3 resumes carry If-Match with the recorded ETag: an object replaced since (same size) is downloaded
    again from byte 0."""
    import boto3

    endpoint, _ = s3
    admin = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    key = "UKBB_LD/changing.npz"
    admin.put_object(Bucket=BUCKET, Key=key, Body=_OLD, ACL="public-read")
    dest = tmp_path / "c.npz"
    with pytest.raises(dl.DownloadError):
        dl.fetch(_Dying(BUCKET, key, endpoint_url=endpoint), dest, retries=0, progress=False)
    remote = dl.S3Remote(BUCKET, key, endpoint_url=endpoint)
    info = remote.stat()
    admin.put_object(Bucket=BUCKET, Key=key, Body=_NEW, ACL="public-read")
    with pytest.raises(dl._ValidatorChanged):
        list(remote.stream(1000, info))  # the object changed after the HEAD: 412, not the new bytes
    dl.fetch(dl.S3Remote(BUCKET, key, endpoint_url=endpoint), dest, progress=False)
    assert dest.read_bytes() == _NEW


def test_window_manifest_selection_and_check(s3, tmp_path):
    endpoint, _ = s3
    man = pd.DataFrame({
        "name": ["chr6_28000001_31000001", "chr22_16000001_19000001", "chr22_17000001_20000001", "chr22_18000001_21000001"],
        "chromosome": ["6", "22", "22", "22"], "start": [28000001, 16000001, 17000001, 18000001],
        "end": [31000001, 19000001, 20000001, 21000001], "kind": ["npz2", "npz", "npz", "npz"],
    })
    p = tmp_path / "m.tsv"
    man.to_csv(p, sep="\t", index=False)
    inc, exc = dl.read_window_manifest(p, chromosomes=[22])
    assert list(inc["name"]) == list(man["name"][1:]) and exc.empty
    inc, exc = dl.read_window_manifest(p)
    assert list(exc["name"]) == ["chr6_28000001_31000001"] and exc["reason"].iloc[0].startswith("long-range")
    checked = dl.check_window_manifest(man, dl.list_ld_bucket(endpoint_url=endpoint))
    assert list(checked["kind"]) == ["npz2", "npz", "npz", "absent"]
    # the shipped manifest: every UKBB window name is well formed and the long-range regions are npz2
    shipped = pd.read_csv(Path(__file__).parents[1] / "resources" / "ukbb_ld_windows.tsv", sep="\t", comment="#",
                          dtype={"chromosome": str})
    assert (shipped["name"] == "chr" + shipped["chromosome"] + "_" + shipped["start"].astype(str) + "_"
            + shipped["end"].astype(str)).all()
    assert set(shipped.loc[shipped["kind"] == "npz2", "chromosome"]) == {"6", "8", "11"}


def _generator():
    import importlib.util

    path = Path(__file__).parents[1] / "workflow" / "scripts" / "download_ld_manifest.py"
    spec = importlib.util.spec_from_file_location("download_ld_manifest", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_shipped_ld_manifest_is_the_recorded_bucket_listing(tmp_path):
    """resources/ukbb_ld_windows.tsv = the recorded 2023-03-21 listing: 2,763 .npz windows (paper), 14 .npz2."""
    root = Path(__file__).parents[1]
    shipped = pd.read_csv(root / "resources" / "ukbb_ld_windows.tsv", sep="\t", dtype={"chromosome": str})
    gen = _generator()
    out = tmp_path / "w.tsv"
    assert gen.main(["--out", str(out)]) == 0
    assert out.read_text() == (root / "resources" / "ukbb_ld_windows.tsv").read_text()  # regenerated exactly
    assert shipped["kind"].value_counts().to_dict() == {"npz": 2763, "absent": 117, "npz2": 14}
    npz2 = set(shipped.loc[shipped["kind"] == "npz2", "name"])
    assert npz2 == {f"chr6_{s}_{s + 3000000}" for s in (26000001, 27000001, 31000001, 32000001)} | {
        f"chr8_{s}_{s + 3000000}" for s in (8000001, 9000001)} | {
        f"chr11_{s}_{s + 3000000}" for s in range(47000001, 55000001, 1000000)}
    kind = shipped.set_index("name")["kind"]
    assert kind["chr6_29000001_32000001"] == "absent" and kind["chr6_25000001_28000001"] == "npz"  # MHC core not in bucket
    assert kind["chr22_14000001_17000001"] == "npz" and kind["chr22_13000001_16000001"] == "absent"
    assert shipped.groupby("chromosome")["end"].max().to_dict()["1"] == 252000001  # last window runs past the end
    # a listing in `aws s3 ls` format gives the same manifest
    ls = tmp_path / "ls.txt"
    ls.write_text("".join(f"2023-03-21 10:00:00 123 {k.removeprefix('UKBB_LD/')}\n" for k in gen.recorded_keys())
                  + "2023-03-21 14:21:15 1663 readme_ld.txt\n")
    assert gen.build(ls).equals(gen.build())


def test_windows_from_keys():
    keys = ["UKBB_LD/chr22_14000001_17000001.npz", "UKBB_LD/chr22_14000001_17000001.gz", "UKBB_LD/readme_ld.txt",
            "chr22_16000001_19000001.npz", "chr22_16000001_19000001.gz", "chr6_26000001_29000001.npz2",
            "chr6_26000001_29000001.gz"]
    m = dl.windows_from_keys(keys)
    got = dict(zip(m["name"], m["kind"]))
    assert got["chr22_14000001_17000001"] == got["chr22_16000001_19000001"] == "npz"
    assert got["chr22_15000001_18000001"] == got["chr22_1_3000001"] == "absent"  # gap and short arm
    assert got["chr6_26000001_29000001"] == "npz2" and list(m["chromosome"])[0] == "6"  # numeric order
    with pytest.raises(ValueError, match=r"chr1_1_3000001: listing has \['npz'\]"):
        dl.windows_from_keys(["chr1_1_3000001.npz"])
    with pytest.raises(ValueError, match="not a 3000000-bp window"):
        dl.windows_from_keys(["chr1_1_2000001.npz", "chr1_1_2000001.gz"])


# ------------------------------------------------------------------------------------------ FANTOM5
_INDEX_HTML = """<html><body><h1>Index of /5/datahub/hg38/tpm/human.tissue.hCAGE</h1><table>
<tr><td><a href="/5/datahub/hg38/tpm/">Parent Directory</a></td></tr>
<tr><td><a href="thymus%2C%20adult%2C%20pool1.CNhs90001.10027-101D9.hg38.tpm.fwd.bw">thymus, adult, pool1...</a></td></tr>
<tr><td><a href="thymus%2C%20adult%2C%20pool1.CNhs90001.10027-101D9.hg38.tpm.rev.bw">thymus...</a></td></tr>
<tr><td><a href='thalamus%252c%2520adult%252c%2520donor10258%252c%2520tech_rep1.CNhs90002.10370-105G1.hg38.tpm.fwd.bw'>x</a></td></tr>
<tr><td><a href="thalamus%2C%20adult%2C%20donor10258%2C%20tech_rep2.CNhs90003.10370-105G1.hg38.tpm.fwd.bw">x</a></td></tr>
<tr><td><a href="thymus%2C%20fetal%2C%20pool1.CNhs90004.1-1.hg38.tpm.fwd.bw">x</a></td></tr>
<tr><td><a href="00_readme.txt">readme</a></td></tr></table></body></html>"""


def test_fantom_index_and_resolution():
    index = dl.parse_index_hrefs(_INDEX_HTML)
    assert len(index) == 5 and "thalamus, adult, donor10258, tech_rep1.CNhs90002.10370-105G1.hg38.tpm.fwd.bw" in set(index["name"])
    hit = dl.resolve_fantom_file(index, "thymus, adult, pool1", "rev")
    assert hit["file"] == "thymus, adult, pool1.CNhs90001.10027-101D9.hg38.tpm.rev.bw" and hit["library"] == "CNhs90001"
    assert hit["href"].startswith("thymus%2C%20adult")  # the URL uses the server's own href
    # technical replicates: the paper's description matches neither exactly -> stop, naming both
    with pytest.raises(dl.FantomResolutionError, match=r"'thalamus, adult, donor10258' \(fwd\): no data-hub file.*tech_rep1.*tech_rep2"):
        dl.resolve_fantom_file(index, "thalamus, adult, donor10258", "fwd")
    pinned = "thalamus, adult, donor10258, tech_rep2.CNhs90003.10370-105G1.hg38.tpm.fwd.bw"
    assert dl.resolve_fantom_file(index, "thalamus, adult, donor10258", "fwd", pinned)["library"] == "CNhs90003"
    with pytest.raises(dl.FantomResolutionError, match="pinned FANTOM5 file is not in the data-hub listing"):
        dl.resolve_fantom_file(index, "thymus, adult, pool1", "fwd", "thymus, adult, pool1.CNhs1.x.tpm.fwd.bw")
    # a known CNhs id wins over the description (robust to how the hub spells it)
    assert dl.resolve_fantom_file(index, "thymus adult pool1", "fwd", library="CNhs90001")["file"].startswith("thymus, adult, pool1.")
    with pytest.raises(dl.FantomResolutionError, match=r"no data-hub file matches '\*\.CNhs1\.\*\.fwd\.bw'"):
        dl.resolve_fantom_file(index, "thymus, adult, pool1", "fwd", library="CNhs1")
    with pytest.raises(dl.FantomResolutionError, match="strand must be fwd or rev"):
        dl.resolve_fantom_file(index, "thymus, adult, pool1", "+")


def test_shipped_fantom_and_encode_manifests():
    """The 20 App. D.3 tissues x 2 strands, every row flagged; ENCODE accessions well formed, corrections flagged."""
    import re

    root = Path(__file__).parents[1] / "config" / "manifests"
    fantom = pd.read_csv(root / "fantom_tissues.tsv", sep="\t", comment="#", dtype=str, keep_default_na=False)
    assert len(fantom) == 40 and fantom["tissue"].nunique() == 20 and list(fantom["strand"][:2]) == ["fwd", "rev"]
    assert set(fantom["status"]) <= {"unresolved", "library_known", "pinned"}
    assert (fantom.loc[fantom["status"] != "pinned", "file"] == "").all()
    assert (fantom.loc[fantom["status"] == "pinned", "file"] != "").all()
    known = fantom[fantom["status"] == "library_known"]
    assert known["library"].str.fullmatch(r"CNhs\d+").all() and (fantom.loc[fantom["status"] == "unresolved", "library"] == "").all()
    assert dict(zip(known["tissue"], known["library"]))["thymus, adult, pool1"] == "CNhs10633"
    enc = pd.read_csv(root / "encode_experiments.tsv", sep="\t", comment="#", dtype=str, keep_default_na=False)
    assert len(enc) == 93 and not enc["accession"].duplicated().any()
    assert all(re.fullmatch(r"ENCSR\d{3}[A-Z]{3}", a) for a in enc["accession"])
    assert all(n.endswith(a) for n, a in zip(enc["name"], enc["accession"]))
    assert dict(zip(enc.loc[enc["status"] != "as_in_paper", "accession"], enc.loc[enc["status"] != "as_in_paper", "status"])) == {
        "ENCSR697YLL": "corrected_unverified", "ENCSR010OVI": "corrected_verified"}


# --------------------------------------------------------------------------------------------- HTTP
class _Handler(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    ranges: list = []
    abort_after: dict[str, int] = {}  # path -> bytes sent before the connection is cut (once)
    ignore_range: set = set()
    # validators per path: "md5" (default), "apache" ('<size hex>-<mtime hex>'), "lm" (Last-Modified only), "none"
    validators: dict[str, str] = {}
    versions: dict[str, int] = {}  # path -> version number (in the Apache ETag and Last-Modified)
    replace_after_head: dict[str, bytes] = {}  # path -> new body, swapped in right after the next HEAD (once)

    def log_message(self, *a):
        pass

    def _lookup(self):
        path = self.path
        if path not in self.files:
            self.send_error(404)
            return None
        return self.files[path]

    def do_HEAD(self):
        body = self._lookup()
        if body is None:
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        for k, v in self._validator_headers(body).items():
            self.send_header(k, v)
        self.end_headers()
        new = type(self).replace_after_head.pop(self.path, None)
        if new is not None:
            type(self).files[self.path] = new
            type(self).versions[self.path] = type(self).versions.get(self.path, 0) + 1

    def _validator_headers(self, body) -> dict:
        style, v = self.validators.get(self.path, "md5"), self.versions.get(self.path, 0)
        lm = f"Mon, 0{1 + v} Jan 2024 00:00:00 GMT"
        return {"md5": {"ETag": f'"{_md5(body)}"'}, "apache": {"ETag": f'"{len(body):x}-5f1e8c3b4a2d{v}"', "Last-Modified": lm},
                "lm": {"Last-Modified": lm}, "none": {}}[style]

    def do_GET(self):
        body = self._lookup()
        if body is None:
            return
        rng = self.headers.get("Range")
        type(self).ranges.append((self.path, rng))
        start = 0
        if_range = self.headers.get("If-Range")
        current = set(self._validator_headers(body).values())
        if rng and self.path not in self.ignore_range and (if_range is None or if_range in current):
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        cut = type(self).abort_after.pop(self.path, None)
        payload = body[start:]
        if cut is not None:
            self.wfile.write(payload[:cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(payload)


@pytest.fixture(scope="module")
def http():
    bigwig = (DATA / "ENCFF000FCA.bigWig").read_bytes()
    files = {
        "/goldenPath/hg38/phyloP100way/hg38.phyloP100way.bw": bigwig,
        "/goldenPath/hg19/liftOver/hg19ToHg38.over.chain.gz": (Path(__file__).parent / "data" / "liftover" / "toy.over.chain.gz").read_bytes(),
        "/files/ENCFF000FCA/@@download/ENCFF000FCA.bigWig": bigwig,
    }
    meta = json.loads((DATA / "encode_ENCSR000TST.json").read_text())
    files["/experiments/ENCSR000TST/?format=json"] = json.dumps(meta).encode()
    _Handler.files = files
    port = _free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{port}", files
    server.shutdown()
    server.server_close()


def test_http_bigwig_and_chain(http, tmp_path):
    base, files = http
    for path in ("/goldenPath/hg38/phyloP100way/hg38.phyloP100way.bw", "/goldenPath/hg19/liftOver/hg19ToHg38.over.chain.gz"):
        rec = dl.fetch(dl.HTTPRemote(base + path), tmp_path / Path(path).name, progress=False)
        assert (tmp_path / Path(path).name).read_bytes() == files[path]
        assert rec["verified"] == "size+etag" and rec["resolved"] == Path(path).name
    import pyBigWig

    bw = pyBigWig.open(str(tmp_path / "hg38.phyloP100way.bw"))
    assert bw.chroms() == {"chr1": 100000}


def test_http_killed_download_resumes_with_range(http, tmp_path):
    base, files = http
    path = "/goldenPath/hg38/phyloP100way/hg38.phyloP100way.bw"
    _Handler.ranges.clear()
    _Handler.abort_after[path] = 3000
    with pytest.raises(dl.DownloadError, match="rerun to resume"):
        dl.fetch(dl.HTTPRemote(base + path), tmp_path / "p.bw", retries=0, progress=False)
    assert (tmp_path / ".p.bw.part").stat().st_size == 3000 and not (tmp_path / "p.bw").exists()
    rec = dl.fetch(dl.HTTPRemote(base + path), tmp_path / "p.bw", progress=False)
    assert _Handler.ranges == [(path, None), (path, "bytes=3000-")]
    assert rec["md5"] == _md5(files[path]) == _md5((tmp_path / "p.bw").read_bytes())


def test_http_retry_with_backoff_in_one_call(http, tmp_path):
    base, files = http
    path = "/goldenPath/hg38/phyloP100way/hg38.phyloP100way.bw"
    _Handler.ranges.clear()
    _Handler.abort_after[path] = 500
    waits = []
    dl.fetch(dl.HTTPRemote(base + path), tmp_path / "r.bw", retries=3, backoff=0.5, sleep=waits.append, progress=False)
    assert waits == [0.5] and _Handler.ranges[-1] == (path, "bytes=500-")
    assert (tmp_path / "r.bw").read_bytes() == files[path]


def test_http_server_ignoring_range_restarts(http, tmp_path):
    base, files = http
    path = "/goldenPath/hg19/liftOver/hg19ToHg38.over.chain.gz"
    (tmp_path / ".c.gz.part").write_bytes(files[path][:10])
    # a partial file from an unknown source is discarded (no sidecar); make one that looks valid
    rem = dl.HTTPRemote(base + path)
    info = rem.stat()
    (tmp_path / ".c.gz.part.json").write_text(json.dumps({"source": rem.source, "size": info.size, "md5": None,
                                                          "etag": info.etag, "last_modified": None}))
    _Handler.ranges.clear()
    _Handler.ignore_range.add(path)
    try:
        dl.fetch(rem, tmp_path / "c.gz", progress=False)
    finally:
        _Handler.ignore_range.discard(path)
    assert (tmp_path / "c.gz").read_bytes() == files[path]
    assert _Handler.ranges == [(path, "bytes=10-"), (path, None)]  # resumed, answered 200, restarted from 0


def test_verify_by_etag_form(tmp_path):
    """md5 ETags are checked, S3 multipart ETags checked when a part size reproduces them, other forms
    (Apache / nginx '<size hex>-<mtime hex>') recorded: never a crash."""
    f = tmp_path / "x"
    f.write_bytes(b"123456789")
    good = _md5(b"123456789")
    assert dl.verify(f, dl.RemoteInfo(size=9, etag="186a0-5f1e8c3b4a2d0"), "src") == (good, "size")
    assert dl.verify(f, dl.RemoteInfo(size=9, etag="W/abc"), "src") == (good, "size")
    assert dl.verify(f, dl.RemoteInfo(size=9, etag=good.upper()), "src") == (good, "size+etag")
    multipart = hashlib.md5(hashlib.md5(b"123456789").digest()).hexdigest() + "-1"
    assert dl.verify(f, dl.RemoteInfo(size=9, etag=multipart), "src") == (good, "size+multipart-etag")
    assert dl.verify(f, dl.RemoteInfo(size=9, etag="0" * 32 + "-1"), "src") == (good, "size")
    with pytest.raises(dl.VerificationError, match=r"src: ETag/md5 mismatch: expected 0{32}"):
        dl.verify(f, dl.RemoteInfo(size=9, etag="0" * 32), "src")
    assert [dl.etag_kind(e) for e in (None, good, multipart, "186a0-5f1e8c3b4a2d0")] == ["none", "md5", "multipart", "opaque"]


_OLD, _NEW = bytes(range(256)) * 40, bytes(255 - b for b in range(256)) * 40  # same size, different bytes


def _serve(path, body, style):
    _Handler.files[path] = body
    _Handler.validators[path] = style
    _Handler.versions[path] = 0
    _Handler.ranges.clear()


def test_http_apache_etag_download_and_resume(http, tmp_path):
    base, _ = http
    path = "/apache/file.bin"
    _serve(path, _OLD, "apache")
    _Handler.abort_after[path] = 3000
    with pytest.raises(dl.DownloadError, match="rerun to resume"):
        dl.fetch(dl.HTTPRemote(base + path), tmp_path / "a.bin", retries=0, progress=False)
    rec = dl.fetch(dl.HTTPRemote(base + path), tmp_path / "a.bin", progress=False)
    assert (tmp_path / "a.bin").read_bytes() == _OLD
    assert rec["verified"] == "size" and rec["etag"] == f"{len(_OLD):x}-5f1e8c3b4a2d0"  # recorded
    assert _Handler.ranges == [(path, None), (path, "bytes=3000-")]


@pytest.mark.parametrize("style", ["lm", "apache"])
def test_http_resume_after_same_size_replacement_restarts(http, tmp_path, style):
    """The server's file is replaced (same size) between the partial download and the resume: the result is
    the new file, never old bytes followed by new ones."""
    base, _ = http
    path = f"/replaced/{style}.bin"
    _serve(path, _OLD, style)
    _Handler.abort_after[path] = 3000
    with pytest.raises(dl.DownloadError, match="rerun to resume"):
        dl.fetch(dl.HTTPRemote(base + path), tmp_path / "r.bin", retries=0, progress=False)
    assert (tmp_path / ".r.bin.part").read_bytes() == _OLD[:3000]
    _Handler.files[path], _Handler.versions[path] = _NEW, 1
    dl.fetch(dl.HTTPRemote(base + path), tmp_path / "r.bin", progress=False)
    assert (tmp_path / "r.bin").read_bytes() == _NEW


@pytest.mark.parametrize("style", ["lm", "apache"])
def test_http_if_range_restarts_when_object_changes_after_head(http, tmp_path, style):
    """The object changes between the HEAD and the ranged GET: If-Range makes the server answer 200 and the
    download starts again from byte 0."""
    base, _ = http
    path = f"/race/{style}.bin"
    _serve(path, _OLD, style)
    _Handler.abort_after[path] = 3000
    with pytest.raises(dl.DownloadError):
        dl.fetch(dl.HTTPRemote(base + path), tmp_path / "r.bin", retries=0, progress=False)
    _Handler.replace_after_head[path] = _NEW
    _Handler.ranges.clear()
    dl.fetch(dl.HTTPRemote(base + path), tmp_path / "r.bin", progress=False)
    assert (tmp_path / "r.bin").read_bytes() == _NEW
    assert [r for _, r in _Handler.ranges] == ["bytes=3000-", None]


def test_http_without_validator_never_resumes(http, tmp_path):
    base, _ = http
    path = "/novalidator/n.bin"
    _serve(path, _OLD, "none")
    _Handler.abort_after[path] = 3000
    with pytest.raises(dl.DownloadError):
        dl.fetch(dl.HTTPRemote(base + path), tmp_path / "n.bin", retries=0, progress=False)
    _Handler.files[path] = _NEW
    _Handler.ranges.clear()
    rec = dl.fetch(dl.HTTPRemote(base + path), tmp_path / "n.bin", progress=False)
    assert (tmp_path / "n.bin").read_bytes() == _NEW and rec["verified"] == "size"
    assert _Handler.ranges == [(path, None)]  # no Range request: nothing ties the partial bytes to the object


class _Offline(dl.HTTPRemote):
    def stat(self):
        raise AssertionError("network used")


def test_existing_file_is_adopted_or_left_untouched(http, tmp_path):
    base, files = http
    path = "/goldenPath/hg19/liftOver/hg19ToHg38.over.chain.gz"
    dest = tmp_path / "c.gz"
    dest.write_bytes(b"the user's own file")
    with pytest.raises(dl.DownloadError, match=r"c\.gz: a file is already there and it is not .*left untouched"):
        dl.fetch(dl.HTTPRemote(base + path), dest, progress=False)
    assert dest.read_bytes() == b"the user's own file"
    dest.write_bytes(files[path])  # the right file, e.g. copied by hand: checked against the remote, adopted
    rec = dl.fetch(dl.HTTPRemote(base + path), dest, progress=False)
    assert rec["verified"] == "size+etag" and rec["md5"] == _md5(files[path])
    # verified once: a rerun takes the record offline, without any request
    assert dl.fetch(_Offline(base + path), dest, progress=False) == rec
    dest.write_bytes(files[path][:-1] + b"x")  # modified since: checked again
    with pytest.raises(AssertionError, match="network used"):
        dl.fetch(_Offline(base + path), dest, progress=False)


def test_http_missing_url(http, tmp_path):
    base, _ = http
    with pytest.raises(dl.MissingObjectError, match=r"/nope\.bw: not found \(HTTP 404\)"):
        dl.fetch(dl.HTTPRemote(base + "/nope.bw"), tmp_path / "n.bw", progress=False)


def test_encode_resolution_rule_and_md5(http, tmp_path):
    base, files = http
    rec = encode.resolve("ENCSR000TST", base_url=base)
    # GRCh38 released bigWig, fold change over control, lowest replicate; hg19, archived, audited and
    # signal-p-value files are skipped
    assert rec["file"] == "ENCFF000FCA" and rec["output_type"] == "fold change over control"
    assert rec["biological_replicates"] == [1]
    body = files["/files/ENCFF000FCA/@@download/ENCFF000FCA.bigWig"]
    assert rec["md5"] == _md5(body) and rec["size"] == len(body)
    out = dl.fetch(dl.HTTPRemote(rec["url"], md5=rec["md5"], size=rec["size"]), tmp_path / "e.bw", progress=False)
    assert out["verified"] == "size+md5"
    with pytest.raises(dl.VerificationError, match=r"ENCFF000FCA\.bigWig: md5 mismatch: expected 0{32}"):
        dl.fetch(dl.HTTPRemote(rec["url"], md5="0" * 32, size=rec["size"]), tmp_path / "f.bw", progress=False)


def test_encode_checks_assay_and_target(http):
    base, _ = http
    assert encode.resolve("ENCSR000TST", base_url=base, assay="TF_ChIP-seq", target="ctcf")["file"] == "ENCFF000FCA"
    with pytest.raises(encode.EncodeResolutionError, match=r"ENCSR000TST: manifest says target 'CBFA2T3', ENCODE says \['CTCF'\]"):
        encode.resolve("ENCSR000TST", base_url=base, assay="TF_ChIP-seq", target="CBFA2T3")
    with pytest.raises(encode.EncodeResolutionError, match="manifest says assay 'Histone_ChIP-seq'"):
        encode.check_experiment({"accession": "X", "assay_title": "TF ChIP-seq"}, assay="Histone_ChIP-seq")
    encode.check_experiment({"assay_title": "in situ ChIA-PET", "target": "/targets/POLR2A-human/"}, "ChIA-PET", "POLR2A")
    with pytest.raises(encode.EncodeResolutionError, match="no such ENCODE experiment"):
        encode.resolve("ENCSR697YLLJ", base_url=base)


def test_encode_rejects_errors_and_no_candidates():
    meta = json.loads((DATA / "encode_ENCSR000TST.json").read_text())
    with pytest.raises(encode.EncodeResolutionError, match="ENCSR000TST: experiment has ERROR audits"):
        encode.choose_file({**meta, "audit": {"ERROR": [{"category": "x"}]}})
    with pytest.raises(encode.EncodeResolutionError, match="ENCSR000TST: no released GRCh38 bigWig"):
        encode.choose_file({**meta, "files": [f for f in meta["files"] if f["assembly"] != "GRCh38"]})
    # deterministic: file order in the JSON does not matter
    assert encode.choose_file({**meta, "files": meta["files"][::-1]})["file"] == "ENCFF000FCA"


# ---------------------------------------------------------------------------------------------- GCS
class _RecordingSession(requests.Session):
    def __init__(self):
        super().__init__()
        self.urls = []

    def request(self, method, url, *args, **kwargs):
        self.urls.append((method, url, dict(kwargs.get("params") or {})))
        return super().request(method, url, *args, **kwargs)


@pytest.fixture(scope="module")
def gcs():
    import os

    from gcp_storage_emulator.server import create_server

    port = _free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=dl.UKBB_SUMSTATS_BUCKET)
    server.start()
    old = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    body = gzip.compress(b"SNP\tCHR\tPOS\tA1\tA2\tBeta\tse\tN\nrs1\t1\t100\tA\tG\t0.1\t0.01\t1000\n" * 2000, mtime=0)
    client = dl.gcs_client()
    client.bucket(dl.UKBB_SUMSTATS_BUCKET).blob("UKBB_409K/body_HEIGHTz.sumstats.gz").upload_from_string(body)
    yield body
    if old is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = old
    server.stop()


def test_gcs_requester_pays_passes_billing_project(gcs, tmp_path):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    session = _RecordingSession()
    client = storage.Client(project="emulator", credentials=AnonymousCredentials(), _http=session)
    rec = dl.fetch_ukbb_sumstats("body_HEIGHTz", tmp_path / "h.sumstats.gz", billing="my-billing-project",
                                 client=client, progress=False)
    assert (tmp_path / "h.sumstats.gz").read_bytes() == gcs
    assert rec["source"] == f"gs://{dl.UKBB_SUMSTATS_BUCKET}/UKBB_409K/body_HEIGHTz.sumstats.gz"
    assert rec["verified"] == "size+md5" and rec["md5"] == _md5(gcs)
    # google-cloud-storage 3.x also prefetches bucket metadata in a background thread (its
    # _bucket_metadata_cache, best effort, without userProject); every object request is ours and billed
    ours = [(m, u) for m, u, p in session.urls if "/o/" in u or "alt=media" in u]
    assert any("alt=media" in u for _, u in ours) and any("alt=media" not in u for _, u in ours)
    for method, url in ours:
        assert "userProject=my-billing-project" in url, url


def test_gcs_missing_billing_project_is_clear(gcs, tmp_path, monkeypatch):
    monkeypatch.delenv(dl.BILLING_ENV, raising=False)
    with pytest.raises(dl.BillingProjectError, match=rf"requester-pays.*'download: billing_project:'.*{dl.BILLING_ENV}"):
        dl.fetch_ukbb_sumstats("body_HEIGHTz", tmp_path / "h.gz", billing=None, progress=False)
    monkeypatch.setenv(dl.BILLING_ENV, "from-env")
    assert dl.billing_project(None) == "from-env"
    assert dl.billing_project("from-config") == "from-config"


def test_gcs_missing_object_named(gcs, tmp_path):
    with pytest.raises(dl.MissingObjectError, match=r"gs://broad-alkesgroup-public-requester-pays/UKBB_409K/nope\.sumstats\.gz"):
        dl.fetch_ukbb_sumstats("nope", tmp_path / "n.gz", billing="p", progress=False)


def test_local_archive_copy(tmp_path):
    src = tmp_path / "dbNSFP5.1a.zip"
    src.write_bytes(b"dbnsfp" * 1000)
    rec = dl.copy_local(src, tmp_path / "out" / "dbNSFP.zip", name="dbnsfp")
    assert rec["md5"] == _md5(src.read_bytes()) and rec["size"] == 6000
    with pytest.raises(dl.MissingObjectError, match="set its path in the config"):
        dl.copy_local(tmp_path / "absent.zip", tmp_path / "o.zip")


# ------------------------------------------------------------------------------------------ the DAG
def test_ukbb_dag_dry_run_offline():
    """`snakemake -n --configfile config/ukbb.yaml download_all` builds every download job from local manifests."""
    import subprocess
    import sys

    root = Path(__file__).parents[1]
    r = subprocess.run([sys.executable, "-m", "snakemake", "download_all", "-n", "--nolock", "--cores", "1",
                        "--configfile", "config/ukbb.yaml"], cwd=root, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout + r.stderr
    shipped = pd.read_csv(root / "resources" / "ukbb_ld_windows.tsv", sep="\t")
    n_windows = int((shipped["kind"] == "npz").sum())
    stats = dict(line.split() for line in out.split("Job stats:")[1].split("total")[0].splitlines()[3:] if line.strip())
    assert int(stats["download_ukbb_ld_window"]) == n_windows
    assert int(stats["download_ukbb_sumstats"]) == 3
    assert int(stats["download_track_http"]) == 15
    assert int(stats["download_track_fantom"]) == 40 and int(stats["fantom_datahub_index"]) == 1
    assert int(stats["resolve_encode_experiment"]) == int(stats["download_track_encode"]) == 93
    assert int(stats["liftover_ld_variants"]) == 22


def test_fantom_index_and_url_rules(http, tmp_path):
    """The package functions behind rules fantom_datahub_index and download_track_http / download_chain."""
    base, files = http
    _Handler.files["/hub/"] = _INDEX_HTML.encode()
    index = dl.fetch_fantom_index(f"{base}/hub/", tmp_path / "index.tsv", retries=0)
    back = pd.read_csv(tmp_path / "index.tsv", sep="\t")
    assert len(index) == len(back) == 5 and list(back.columns) == ["href", "name"]
    with pytest.raises(dl.MissingObjectError, match=r"/nohub/: not found \(HTTP 404\); check download.fantom_base_url"):
        dl.fetch_fantom_index(f"{base}/nohub/", tmp_path / "x.tsv", retries=0)
    path = "/goldenPath/hg19/liftOver/hg19ToHg38.over.chain.gz"
    rec = dl.download_url(base + path, tmp_path / "chain.gz", tmp_path / "chain.json", retries=0)
    assert json.loads((tmp_path / "chain.json").read_text()) == rec and rec["md5"] == _md5(files[path])
    with pytest.raises(ValueError, match="not pinned yet"):
        dl.download_url(f"{base}/<tissue>.bw", tmp_path / "t.bw", tmp_path / "t.json")
    assert not (tmp_path / "t.bw").exists() and not (tmp_path / "t.json").exists()
