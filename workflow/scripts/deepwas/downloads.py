"""Resumable, verified downloads from S3 (unsigned), requester-pays GCS and HTTP, with lock records.

Every download goes through `fetch(remote, dest)`:

- the remote is asked for its size and checksum first (`stat`); a missing object raises
  `MissingObjectError` naming it (never retried);
- bytes are appended to `.{name}.part` beside `dest`, from where the partial file ends (an HTTP Range
  request / ranged GetObject / ranged GCS read), so a killed job resumes on rerun; a sidecar
  `.{name}.part.json` remembers which object (size, checksum, ETag, Last-Modified) the partial bytes belong
  to and the partial file is discarded when the remote changed or gives no validator at all; each ranged
  request carries the validator (HTTP If-Range, S3 If-Match), and an answer with the whole object (or 412)
  restarts the download from byte 0, so old and new bytes are never joined;
- transient errors are retried with exponential backoff (`retries`, `backoff` seconds x 2^attempt);
- the finished file is verified: size always, then md5 when the source gives one (ENCODE metadata, GCS
  md5Hash, a single-part S3 ETag, a manifest); a multipart S3 ETag ("<md5>-<parts>") is checked against
  the usual part sizes and recorded as size-only when no part size reproduces it; any other ETag (Apache's
  and nginx's "<size hex>-<mtime hex>") is recorded only (`etag_kind`). A failed check deletes the partial
  file and raises `VerificationError` with both checksums; S3 403 / 404 raise `AccessDeniedError` /
  `MissingObjectError` naming bucket and key (never retried);
- an existing `dest` is never overwritten or deleted: it is adopted when it is the remote's file
  (`adopt_existing`; offline when a `.{name}.verified.json` sidecar written at verification still matches
  its size and mtime), else the download stops naming it;
- only then is the partial file renamed onto `dest`, and a lock record (source, resolved name, size,
  checksum, how it was verified, UTC date) returned; `write_lock_record` stores it as JSON and
  `merge_lock_records` joins records into a TSV in a caller-given (manifest) order.
"""
from __future__ import annotations

import base64
import binascii
import datetime as _dt
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import pandas as pd

from deepwas.io import atomic_path, write_json

CHUNK = 1 << 20
BILLING_ENV = "DEEPWAS_BILLING_PROJECT"
LOCK_COLUMNS = ["name", "source", "resolved", "size", "md5", "etag", "verified", "date", "path"]


class DownloadError(RuntimeError):
    """A download failed; the message names the source."""


class MissingObjectError(DownloadError):
    """The source says the object does not exist (S3 NoSuchKey / 404, GCS 404, HTTP 404)."""


class AccessDeniedError(DownloadError):
    """The source refuses the request (S3 403, HTTP 401/403): never retried."""


class VerificationError(DownloadError):
    """The downloaded bytes do not match the size or checksum the source gave."""


class BillingProjectError(DownloadError):
    """Requester-pays access without a billing project."""


@dataclass
class RemoteInfo:
    size: int
    md5: str | None = None  # hex
    etag: str | None = None  # as given by the server, quotes stripped
    last_modified: str | None = None  # HTTP Last-Modified, as given

    def validator(self) -> str | None:
        """What ties partial bytes to one version of the object: md5, else ETag, else Last-Modified."""
        return self.md5 or self.etag or self.last_modified


_MD5_ETAG = re.compile(r"[0-9a-fA-F]{32}")
_MULTIPART_ETAG = re.compile(r"([0-9a-fA-F]{32})-(\d+)")


def etag_kind(etag: str | None) -> str:
    """How an ETag can be checked: 'md5' (32 hex digits: the md5 of the bytes, as S3 single-part uploads and
    many servers give), 'multipart' ('<md5>-<parts>', S3 multipart uploads) or 'opaque' (anything else, such
    as Apache's and nginx's '<size hex>-<mtime hex>': recorded, and compared when a download resumes)."""
    if not etag:
        return "none"
    if _MD5_ETAG.fullmatch(etag):
        return "md5"
    if _MULTIPART_ETAG.fullmatch(etag):
        return "multipart"
    return "opaque"


def md5_file(path, chunk: int = CHUNK) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _s3_multipart_etag(path, part_size: int) -> str:
    digests = []
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(part_size), b""):
            digests.append(hashlib.md5(block).digest())
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


def verify(path, info: RemoteInfo, source: str, expected_md5: str | None = None) -> tuple[str, str]:
    """Check size and checksum of a finished file; return (md5 hex, how it was verified)."""
    size = os.path.getsize(path)
    if size != info.size:
        raise VerificationError(f"{source}: size mismatch: expected {info.size} bytes, got {size}")
    got = md5_file(path)
    want = expected_md5 or info.md5
    if want:
        if got != want.lower():
            raise VerificationError(f"{source}: md5 mismatch: expected {want.lower()}, got {got} (file corrupted in transfer or at the source)")
        return got, "size+md5"
    etag, kind = info.etag, etag_kind(info.etag)
    if kind == "md5":
        if got != etag.lower():
            raise VerificationError(f"{source}: ETag/md5 mismatch: expected {etag.lower()}, got {got} (file corrupted in transfer or at the source)")
        return got, "size+etag"
    if kind == "multipart":
        parts = int(etag.rsplit("-", 1)[1])
        for mib in (8, 16, 5, 32, 64, 100, 128, 256, 512):
            ps = mib << 20
            if -(-size // ps) == parts and _s3_multipart_etag(path, ps) == etag.lower():
                return got, "size+multipart-etag"
    return got, "size"  # opaque / no ETag: the ETag is recorded in the lock and tied the resumed bytes


class Remote:
    """One object at a source: `stat()` and `stream(start)` (bytes from offset `start` to the end)."""

    source: str = ""
    resolved: str = ""

    def stat(self) -> RemoteInfo:  # pragma: no cover - interface
        raise NotImplementedError

    def stream(self, start: int, info: RemoteInfo) -> Iterator[bytes]:  # pragma: no cover - interface
        raise NotImplementedError


# --------------------------------------------------------------------------------------------- S3
class S3Remote(Remote):
    """An object of a public S3 bucket, read with unsigned requests (no AWS credentials needed)."""

    def __init__(self, bucket: str, key: str, endpoint_url: str | None = None, client=None, region: str = "us-east-1"):
        self.bucket, self.key = bucket, key
        self.source = f"s3://{bucket}/{key}"
        self.resolved = key.rsplit("/", 1)[-1]
        self.client = client or s3_client(endpoint_url, region)

    def _error(self, err, operation: str) -> Exception:
        """A readable error for a botocore ClientError of `operation`, naming bucket and key and what to do."""
        code = str(err.response.get("Error", {}).get("Code", ""))
        where = f"{self.source} (bucket {self.bucket!r}, key {self.key!r})"
        if code in ("404", "NoSuchKey", "NotFound"):
            return MissingObjectError(f"{self.source}: no such key {self.key!r} in bucket {self.bucket!r} (404); check download.ld_bucket, "
                                      "download.ld_prefix and the window manifest (rule check_ukbb_ld_manifest lists the bucket)")
        if code == "NoSuchBucket":
            return MissingObjectError(f"{where}: no such bucket {self.bucket!r}; check download.ld_bucket")
        if code in ("403", "AccessDenied", "Forbidden", "AllAccessDisabled", "AccountProblem"):
            return AccessDeniedError(
                f"{where}: access denied (HTTP 403) on {operation}. The workflow reads this bucket with unsigned "
                "(anonymous) requests, which S3 refuses when the object is not public, when the bucket is "
                "requester-pays, or when the key does not exist and listing is not public. Check the bucket and key "
                "(download.ld_bucket, download.ld_prefix, download.s3_endpoint); if the bucket now needs credentials "
                "or requester-pays, download the files yourself (e.g. `aws s3 cp --request-payer requester ...`) into "
                "ld.dir and run with `ld.source: local`")
        return DownloadError(f"{where}: {operation} failed with S3 error {code or '?'}: {err}")

    def stat(self) -> RemoteInfo:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key)
        except ClientError as err:
            raise self._error(err, "HeadObject") from None
        return RemoteInfo(size=int(head["ContentLength"]), etag=str(head.get("ETag", "")).strip('"') or None)

    def stream(self, start: int, info: RemoteInfo) -> Iterator[bytes]:
        from botocore.exceptions import ClientError

        kwargs = {}
        if start:
            kwargs["Range"] = f"bytes={start}-"
            if info.etag:  # the partial bytes belong to this version: S3 answers 412 if the object changed
                kwargs["IfMatch"] = f'"{info.etag}"'
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key, **kwargs)["Body"]
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            if code in ("412", "PreconditionFailed"):
                raise _ValidatorChanged() from None
            raise self._error(err, "GetObject") from None
        yield from body.iter_chunks(CHUNK)


def s3_client(endpoint_url: str | None = None, region: str = "us-east-1"):
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint_url or None, region_name=region,
                        config=Config(signature_version=UNSIGNED, retries={"max_attempts": 2}))


# --------------------------------------------------------------------------------------------- GCS
def billing_project(configured: str | None = None) -> str:
    """The requester-pays billing project: config value, else $DEEPWAS_BILLING_PROJECT; a clear error if neither."""
    project = (configured or "").strip() or os.environ.get(BILLING_ENV, "").strip()
    if not project:
        raise BillingProjectError(
            "the UKBB_409K summary statistics are in a requester-pays Google Cloud Storage bucket: set "
            f"'download: billing_project:' in the config (or the {BILLING_ENV} environment variable) to a "
            "Google Cloud project you may bill, e.g. --config download='{billing_project: my-project}'"
        )
    return project


class GCSRemote(Remote):
    """An object of a requester-pays GCS bucket; every request carries userProject=<billing project>."""

    def __init__(self, bucket: str, name: str, user_project: str | None, client=None):
        self.user_project = billing_project(user_project)
        self.bucket_name, self.name = bucket, name
        self.source = f"gs://{bucket}/{name}"
        self.resolved = name.rsplit("/", 1)[-1]
        self.client = client or gcs_client()
        self.bucket = self.client.bucket(bucket, user_project=self.user_project)
        self._blob = None

    def stat(self) -> RemoteInfo:
        from google.api_core.exceptions import NotFound

        try:
            blob = self.bucket.get_blob(self.name)
        except NotFound as err:
            raise MissingObjectError(f"{self.source}: not found ({err})") from err
        if blob is None:
            raise MissingObjectError(f"{self.source}: no such object (404)")
        self._blob = blob
        md5 = binascii.hexlify(base64.b64decode(blob.md5_hash)).decode() if blob.md5_hash else None
        return RemoteInfo(size=int(blob.size), md5=md5, etag=blob.etag)

    def stream(self, start: int, info: RemoteInfo) -> Iterator[bytes]:
        blob = self._blob or self.bucket.blob(self.name)
        step = 8 * CHUNK
        for a in range(start, info.size, step):
            yield blob.download_as_bytes(start=a, end=min(a + step, info.size) - 1, checksum=None)


def gcs_client(project: str | None = None):
    """A GCS client: the emulator at $STORAGE_EMULATOR_HOST when set, else default credentials."""
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project=project or "emulator", credentials=AnonymousCredentials())
    return storage.Client(project=project)


# -------------------------------------------------------------------------------------------- HTTP
class HTTPRemote(Remote):
    """A URL served over HTTP(S); resumes with Range requests, restarts when the server ignores Range."""

    def __init__(self, url: str, md5: str | None = None, size: int | None = None, session=None, timeout: float = 60):
        import requests

        self.url = self.source = url
        self.resolved = url.rstrip("/").rsplit("/", 1)[-1].split("?")[0]
        self.md5, self.size, self.timeout = md5, size, timeout
        self.session = session or requests.Session()

    def stat(self) -> RemoteInfo:
        r = self.session.head(self.url, allow_redirects=True, timeout=self.timeout)
        if r.status_code == 404:
            raise MissingObjectError(f"{self.url}: not found (HTTP 404)")
        if r.status_code in (401, 403):
            raise AccessDeniedError(f"{self.url}: access denied (HTTP {r.status_code}); check the URL in the config "
                                    "or manifest, or download the file yourself")
        r.raise_for_status()
        size = self.size if self.size is not None else r.headers.get("Content-Length")
        if size is None:
            raise DownloadError(f"{self.url}: the server gives no Content-Length and no size is known; cannot verify")
        if self.size is not None and r.headers.get("Content-Length") and int(r.headers["Content-Length"]) != self.size:
            raise VerificationError(f"{self.url}: server says {r.headers['Content-Length']} bytes, metadata says {self.size}")
        raw_etag = (r.headers.get("ETag") or "").strip()
        # a weak ETag (W/"...") may not be used in If-Range: it is not a validator of the bytes
        etag = None if raw_etag.startswith("W/") else raw_etag.strip('"') or None
        return RemoteInfo(size=int(size), md5=self.md5, etag=etag, last_modified=r.headers.get("Last-Modified") or None)

    def stream(self, start: int, info: RemoteInfo) -> Iterator[bytes]:
        headers = {}
        if start:
            # If-Range: the server sends the rest only if the object is still the version the partial bytes came
            # from (strong ETag, else Last-Modified); otherwise it answers 200 with the whole new object
            validator = f'"{info.etag}"' if info.etag else info.last_modified
            if not validator:
                raise _ValidatorChanged()  # nothing ties the partial bytes to this object: start again
            headers = {"Range": f"bytes={start}-", "If-Range": validator}
        with self.session.get(self.url, headers=headers, stream=True, timeout=self.timeout) as r:
            if r.status_code == 404:
                raise MissingObjectError(f"{self.url}: not found (HTTP 404)")
            if r.status_code in (401, 403):
                raise AccessDeniedError(f"{self.url}: access denied (HTTP {r.status_code}); check the URL in the "
                                        "config or manifest, or download the file yourself")
            r.raise_for_status()
            if start and r.status_code != 206:
                raise _ValidatorChanged()
            # read1: whatever has arrived (up to CHUNK), so bytes before a dropped connection are kept;
            # raw bytes (no Content-Encoding decoding): the checksum is of the file as served
            raw = r.raw
            while True:
                block = raw.read1(CHUNK, decode_content=False) if hasattr(raw, "read1") else raw.read(CHUNK, decode_content=False)
                if not block:
                    break
                yield block


class _ValidatorChanged(Exception):
    """A ranged request was answered with the whole object (validator changed or Range ignored), or the
    object changed since the partial bytes were written: the download starts again from byte 0."""


# ------------------------------------------------------------------------------------------- local
class LocalRemote(Remote):
    """A user-supplied local file (licence-gated archives such as dbNSFP): copied and checksummed."""

    def __init__(self, path, md5: str | None = None):
        self.path = Path(path)
        self.source = str(self.path.resolve())
        self.resolved = self.path.name
        self.md5 = md5

    def stat(self) -> RemoteInfo:
        if not self.path.is_file():
            raise MissingObjectError(f"{self.path}: no such file (set its path in the config)")
        return RemoteInfo(size=self.path.stat().st_size, md5=self.md5)

    def stream(self, start: int, info: RemoteInfo) -> Iterator[bytes]:
        with open(self.path, "rb") as fh:
            fh.seek(start)
            yield from iter(lambda: fh.read(CHUNK), b"")


# -------------------------------------------------------------------------------------------- core
def _part_paths(dest: Path) -> tuple[Path, Path]:
    return dest.parent / f".{dest.name}.part", dest.parent / f".{dest.name}.part.json"


def verified_record_path(dest) -> Path:
    """The sidecar `.{name}.verified.json` beside a finished download: its lock record, size and mtime."""
    dest = Path(dest)
    return dest.parent / f".{dest.name}.verified.json"


def _stamp(dest: Path) -> dict:
    st = dest.stat()
    return {"file_size": st.st_size, "file_mtime_ns": st.st_mtime_ns}


def _write_verified(dest: Path, record: dict) -> None:
    write_json(verified_record_path(dest), {**record, **_stamp(dest)})


def existing_record(dest, source: str) -> dict | None:
    """The lock record of a finished download at `dest` from `source`, read offline from its sidecar when the
    file still has the size and modification time it had when verified; None otherwise."""
    dest, side = Path(dest), verified_record_path(dest)
    if not dest.is_file() or not side.is_file():
        return None
    try:
        rec = json.loads(side.read_text())
    except (OSError, ValueError):
        return None
    stamp = {k: rec.pop(k, None) for k in ("file_size", "file_mtime_ns")}
    if stamp != _stamp(dest) or rec.get("source") != source:
        return None
    return rec


def _record(remote: Remote, dest: Path, name: str | None, info: RemoteInfo, md5: str, how: str) -> dict:
    return {
        "name": name or dest.name, "source": remote.source, "resolved": remote.resolved, "size": info.size,
        "md5": md5, "etag": info.etag or "", "verified": how,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "path": str(dest),
    }


def adopt_existing(remote: Remote, dest, *, name: str | None = None, expected_md5: str | None = None) -> dict:
    """The lock record of a file already at `dest`; the file is never modified, moved or deleted.

    A file this module verified before (sidecar matching its size and mtime) is taken offline. Any other file
    is checked against the remote (size, then md5 / ETag as `verify` allows) and adopted when it matches;
    when it does not, `DownloadError` names the file and the remote, and the file stays as it is.
    """
    dest = Path(dest)
    rec = existing_record(dest, remote.source)
    if rec is not None:
        return rec
    info = remote.stat()
    try:
        md5, how = verify(dest, info, remote.source, expected_md5)
    except VerificationError as err:
        raise DownloadError(
            f"{dest}: a file is already there and it is not {remote.source} ({err}); it is left untouched. Move it "
            "away to download the remote file, or, for LD windows of your own, set `ld.source: local`") from None
    rec = _record(remote, dest, name, info, md5, how)
    _write_verified(dest, rec)
    return rec


def fetch(remote: Remote, dest, *, name: str | None = None, retries: int = 5, backoff: float = 2.0,
          expected_md5: str | None = None, progress: bool = True, sleep=time.sleep) -> dict:
    """Download `remote` to `dest` (resumable, verified, atomic); return the lock record.

    An existing `dest` is never overwritten: it is adopted when it is the remote's file (`adopt_existing`).
    Partial bytes are resumed only while the remote keeps the validator (md5, ETag or Last-Modified) recorded
    when they were written, and each ranged request carries it (HTTP If-Range, S3 If-Match): a changed object,
    or one without any validator, is downloaded again from byte 0.
    """
    from tqdm import tqdm

    dest = Path(dest)
    if dest.exists():
        return adopt_existing(remote, dest, name=name, expected_md5=expected_md5)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part, meta = _part_paths(dest)
    info = remote.stat()

    def identity(i: RemoteInfo) -> dict:
        return {"source": remote.source, "size": i.size, "md5": expected_md5 or i.md5, "etag": i.etag,
                "last_modified": i.last_modified}

    if part.exists():
        try:
            same = json.loads(meta.read_text()) == identity(info)
        except (OSError, ValueError):
            same = False
        if not same or part.stat().st_size > info.size or not (expected_md5 or info.validator()):
            part.unlink()
    if not part.exists():
        part.touch()
    meta.write_text(json.dumps(identity(info)))

    attempt = restarts = 0
    with tqdm(total=info.size, initial=part.stat().st_size, unit="B", unit_scale=True,
              desc=dest.name, disable=not progress, mininterval=1.0) as bar:
        while True:
            start = part.stat().st_size
            if start >= info.size:
                break
            try:
                with open(part, "ab") as fh:
                    for block in remote.stream(start, info):
                        fh.write(block)
                        bar.update(len(block))
                if part.stat().st_size < info.size:
                    raise DownloadError(f"{remote.source}: connection ended at {part.stat().st_size} of {info.size} bytes")
            except (MissingObjectError, AccessDeniedError):
                raise
            except _ValidatorChanged:
                # the object changed (or the server ignored Range): the partial bytes are stale, start from 0
                restarts += 1
                if restarts > retries + 1:
                    raise DownloadError(f"{remote.source}: the object kept changing during the download "
                                        f"({restarts} restarts); rerun later") from None
                part.write_bytes(b"")
                info = remote.stat()
                meta.write_text(json.dumps(identity(info)))
                bar.reset(total=info.size)
                continue
            except Exception as err:  # network errors of any client library
                if attempt >= retries:
                    raise DownloadError(
                        f"{remote.source}: download failed after {attempt + 1} attempt(s) at byte "
                        f"{part.stat().st_size} of {info.size}: {err}; rerun to resume from there"
                    ) from err
                sleep(backoff * 2 ** attempt)
                attempt += 1
    try:
        md5, how = verify(part, info, remote.source, expected_md5)
    except VerificationError:
        part.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)
        raise
    if dest.exists():  # appeared while downloading: keep it, never overwrite
        part.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)
        return adopt_existing(remote, dest, name=name, expected_md5=expected_md5)
    os.replace(part, dest)
    meta.unlink(missing_ok=True)
    rec = _record(remote, dest, name, info, md5, how)
    _write_verified(dest, rec)
    return rec


# ------------------------------------------------------------------------------- UKBB LD windows
UKBB_LD_BUCKET = "broad-alkesgroup-ukbb-ld"
UKBB_LD_PREFIX = "UKBB_LD/"
UKBB_LD_PANEL_SIZE = 337_545     # the people the UKBB LD windows were computed on (Weissbrod et al. 2020)
WINDOW_KINDS = ("npz", "npz2", "absent")


def read_window_manifest(path, chromosomes=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(windows to download, windows excluded with a reason) from the shipped manifest.

    Manifest columns: name chromosome start end kind; kind 'npz' is downloaded, 'npz2' (long-range LD,
    .npz2/.gz2 files) and 'absent' (not in the bucket) are excluded and reported. `chromosomes` restricts
    to some chromosomes (e.g. [22]) so a user can fetch one chromosome.
    """
    m = pd.read_csv(path, sep="\t", comment="#", dtype={"name": str, "chromosome": str, "kind": str})
    bad = sorted(set(m["kind"]) - set(WINDOW_KINDS))
    if bad:
        raise ValueError(f"{path}: unknown window kind(s) {bad}; expected one of {WINDOW_KINDS}")
    if m["name"].duplicated().any():
        raise ValueError(f"{path}: duplicated window name(s) {sorted(m.loc[m['name'].duplicated(), 'name'])[:5]}")
    if chromosomes:
        m = m[m["chromosome"].isin({str(c) for c in chromosomes})]
    keep = m["kind"] == "npz"
    excluded = m.loc[~keep].assign(reason=lambda d: d["kind"].map(
        {"npz2": "long-range LD (.npz2/.gz2)", "absent": "not in the bucket"}))
    return m.loc[keep].reset_index(drop=True), excluded.reset_index(drop=True)


def fetch_ukbb_ld_window(window: str, out_npz, out_gz, *, bucket: str = UKBB_LD_BUCKET,
                         prefix: str = UKBB_LD_PREFIX, endpoint_url: str | None = None, client=None,
                         retries: int = 5, backoff: float = 2.0, progress: bool = True) -> list[dict]:
    """Download `{prefix}{window}.npz` and `.gz` with unsigned requests; return their lock records."""
    client = client or s3_client(endpoint_url)
    records = []
    for ext, out in (("npz", out_npz), ("gz", out_gz)):
        remote = S3Remote(bucket, f"{prefix}{window}.{ext}", client=client)
        records.append(fetch(remote, out, name=f"{window}.{ext}", retries=retries, backoff=backoff, progress=progress))
    return records


def download_ukbb_ld_window(window: str, ld_dir, lock, *, bucket: str = UKBB_LD_BUCKET, prefix: str = UKBB_LD_PREFIX,
                            endpoint_url: str | None = None, retries: int = 5, backoff: float = 2.0) -> list[dict]:
    """Rule download_ukbb_ld_window: `{ld_dir}/{window}.npz` and `.gz` and the window's lock record `lock`.

    The window files are not Snakemake outputs (only `lock` is), so no rerun, failed job or changed setting
    can delete them; files already in `ld_dir` are adopted when they are the bucket's (offline once
    verified) and never overwritten (`fetch`).
    """
    ld_dir = Path(ld_dir)
    recs = fetch_ukbb_ld_window(window, ld_dir / f"{window}.npz", ld_dir / f"{window}.gz", bucket=bucket,
                                prefix=prefix, endpoint_url=endpoint_url, retries=retries, backoff=backoff)
    write_lock_record(lock, {"window": window, "files": recs})
    return recs


def list_ld_bucket(bucket: str = UKBB_LD_BUCKET, prefix: str = UKBB_LD_PREFIX, endpoint_url: str | None = None,
                   client=None) -> pd.DataFrame:
    """One listing of the LD bucket (key, size, etag): used to check the shipped manifest, not per window."""
    client = client or s3_client(endpoint_url)
    rows = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            rows.append({"key": o["Key"], "size": int(o["Size"]), "etag": str(o.get("ETag", "")).strip('"')})
    return pd.DataFrame(rows, columns=["key", "size", "etag"])


_WINDOW_KEY = re.compile(r"chr(\d+)_(\d+)_(\d+)\.(npz2?|gz2?)$")


def windows_from_keys(keys: Iterable[str], prefix: str = UKBB_LD_PREFIX, stride: int = 1_000_000,
                      length: int = 3_000_000) -> pd.DataFrame:
    """The window manifest implied by a bucket listing (object keys, with or without `prefix`).

    kind 'npz'   : `{w}.npz` and `{w}.gz` are listed (downloaded);
         'npz2'  : `{w}.npz2` is listed (long-range LD; the bucket pairs it with `{w}.gz`): excluded;
         'absent': a window of the 1-based grid (start = 1 + k * stride) between position 1 and the last
                   listed window of its chromosome that the bucket does not have (short arms, centromeres,
                   heterochromatin, the MHC core): excluded and reported.
    Rows are sorted by chromosome (numeric) and start. Keys that are not window files are ignored.
    """
    found: dict[str, set[str]] = {}
    for key in keys:
        key = str(key).strip()
        m = _WINDOW_KEY.search(key[len(prefix):] if key.startswith(prefix) else key)
        if m:
            found.setdefault(f"chr{m[1]}_{m[2]}_{m[3]}", set()).add(m[4])
    rows = []
    for name, exts in found.items():
        chrom, start, end = name[3:].split("_")
        if int(end) - int(start) != length or (int(start) - 1) % stride:
            raise ValueError(f"{name}: not a {length}-bp window on the {stride}-bp grid")
        kind = "npz2" if "npz2" in exts else "npz" if {"npz", "gz"} <= exts else None
        if kind is None:
            raise ValueError(f"{name}: listing has {sorted(exts)}; expected .npz + .gz (or .npz2)")
        rows.append((name, chrom, int(start), int(end), kind))
    df = pd.DataFrame(rows, columns=["name", "chromosome", "start", "end", "kind"])
    absent = []
    for chrom, d in df.groupby("chromosome"):
        have = set(d["start"])
        for start in range(1, int(d["start"].max()), stride):
            if start not in have:
                absent.append((f"chr{chrom}_{start}_{start + length}", chrom, start, start + length, "absent"))
    df = pd.concat([df, pd.DataFrame(absent, columns=df.columns)], ignore_index=True)
    df["_c"] = df["chromosome"].astype(int)
    return df.sort_values(["_c", "start"]).drop(columns="_c").reset_index(drop=True)


def check_window_manifest(manifest: pd.DataFrame, listing: pd.DataFrame, prefix: str = UKBB_LD_PREFIX) -> pd.DataFrame:
    """Mark manifest windows whose .npz/.gz are not both listed as 'absent' (npz2 kept when .npz2 listed)."""
    keys = set(listing["key"])
    m = manifest.copy()
    has = m["name"].map(lambda w: f"{prefix}{w}.npz" in keys and f"{prefix}{w}.gz" in keys)
    has2 = m["name"].map(lambda w: f"{prefix}{w}.npz2" in keys or f"{prefix}{w}.gz2" in keys)
    m.loc[(m["kind"] == "npz") & ~has, "kind"] = "absent"
    m.loc[(m["kind"] == "npz2") & ~has2 & ~has, "kind"] = "absent"
    m.loc[(m["kind"] == "npz") & has2 & ~has, "kind"] = "npz2"
    return m


# ------------------------------------------------------------------------------ UKBB_409K sumstats
UKBB_SUMSTATS_BUCKET = "broad-alkesgroup-public-requester-pays"
UKBB_SUMSTATS_PREFIX = "UKBB_409K/"


def fetch_ukbb_sumstats(trait: str, out, *, billing: str | None, bucket: str = UKBB_SUMSTATS_BUCKET,
                        prefix: str = UKBB_SUMSTATS_PREFIX, client=None, retries: int = 5, backoff: float = 2.0,
                        progress: bool = True) -> dict:
    remote = GCSRemote(bucket, f"{prefix}{trait}.sumstats.gz", user_project=billing, client=client)
    return fetch(remote, out, name=trait, retries=retries, backoff=backoff, progress=progress)


def download_ukbb_sumstats(trait: str, out, lock, *, billing: str | None, bucket: str = UKBB_SUMSTATS_BUCKET,
                           prefix: str = UKBB_SUMSTATS_PREFIX, retries: int = 5, backoff: float = 2.0) -> dict:
    """Rule download_ukbb_sumstats: one UKBB_409K trait and its lock record."""
    rec = fetch_ukbb_sumstats(trait, out, billing=billing, bucket=bucket, prefix=prefix, retries=retries, backoff=backoff)
    write_lock_record(lock, rec)
    return rec


def _check_pinned(url: str) -> None:
    if "<" in url:
        raise ValueError(f"{url}: this manifest row is not pinned yet (placeholder in the file name); "
                         "fill in the exact file name from the source's listing (see the manifest header)")


def download_url(url: str, out, lock, *, name: str | None = None, md5: str | None = None, size: int | None = None,
                 retries: int = 5, backoff: float = 2.0, extra: dict | None = None) -> dict:
    """Rules download_track_http, download_chain, download_sumstats_url: one HTTP file and its lock record."""
    _check_pinned(url)
    rec = fetch(HTTPRemote(url, md5=md5, size=int(size) if size else None), out, name=name or Path(out).name,
                retries=retries, backoff=backoff)
    rec.update(extra or {})
    write_lock_record(lock, rec)
    return rec


def download_encode_track(resolved, out, lock, *, name: str, retries: int = 5, backoff: float = 2.0) -> dict:
    """Rule download_track_encode: the bigWig chosen by `deepwas.encode.resolve` (JSON `resolved`), checked
    against the md5 and size of the ENCODE metadata."""
    res = json.loads(Path(resolved).read_text())
    return download_url(res["url"], out, lock, name=name, md5=res.get("md5"), size=res.get("size"), retries=retries,
                        backoff=backoff, extra={k: res[k] for k in ("experiment", "file", "output_type")})


def resolve_encode_track(accession: str, out, *, base_url: str, allow_warnings: bool = True,
                         assay: str | None = None, target: str | None = None) -> dict:
    """Rule resolve_encode_experiment: ENCODE REST metadata -> the one bigWig chosen by `deepwas.encode.resolve`."""
    from deepwas import encode

    rec = encode.resolve(accession, base_url=base_url, allow_warnings=allow_warnings, assay=assay or None,
                         target=target or None)
    write_json(out, rec)
    return rec


def download_fantom_track(row: dict, index, base_url: str, out, lock, *, name: str, retries: int = 5,
                          backoff: float = 2.0) -> dict:
    """Rule download_track_fantom: the data-hub file of one tissue and strand (`resolve_fantom_file` on the
    listing `index`, a TSV of href and name); the resolved name and CNhs id are recorded in the lock."""
    from urllib.parse import urljoin

    listing = pd.read_csv(index, sep="\t", dtype=str, keep_default_na=False)
    pinned = (row.get("file") or "").strip() or None
    hit = resolve_fantom_file(listing, row["tissue"], row["strand"], pinned, (row.get("library") or "").strip() or None)
    url = urljoin(base_url if base_url.endswith("/") else base_url + "/", hit["href"])
    return download_url(url, out, lock, name=name, retries=retries, backoff=backoff,
                        extra={k: hit[k] for k in ("file", "library", "tissue", "strand")})


# ------------------------------------------------------------------------------ FANTOM5 data hub
def parse_index_hrefs(html: str, suffix: str = ".bw") -> pd.DataFrame:
    """Links of an HTTP directory index (Apache autoindex): columns href (as served) and name (decoded).

    FANTOM5 file names carry the sample description ("thymus, adult, pool1"); some servers percent-encode
    it once, some twice (a file name that itself contains %2c%20), so `name` is unquoted until stable.
    """
    from html import unescape
    from urllib.parse import unquote

    rows = []
    for href in re.findall(r"""href\s*=\s*["']([^"'#?]+)["']""", html, flags=re.I):
        href = unescape(href)
        if "/" in href.rstrip("/") or not href.endswith(suffix):
            continue  # sub-directories, parent links, absolute URLs, other files
        name = href
        while unquote(name) != name:
            name = unquote(name)
        rows.append((href, name))
    return pd.DataFrame(sorted(set(rows), key=lambda r: r[1]), columns=["href", "name"])


class FantomResolutionError(DownloadError):
    """No unique FANTOM5 data-hub file for a manifest row."""


def resolve_fantom_file(index: pd.DataFrame, tissue: str, strand: str, pinned: str | None = None,
                        library: str | None = None) -> dict:
    """The one data-hub file for a tissue and strand (`index` from `parse_index_hrefs`).

    Documented rule (never directory-listing order), first that applies:
    1. a pinned file name (decoded, as in the manifest's `file` column) must be listed exactly;
    2. a known CNhs library id (manifest column `library`): the unique listed name containing
       `.{library}.` and ending `.{strand}.bw`;
    3. otherwise the unique listed name matching `{tissue}.CNhs<digits>.<anything>.{strand}.bw`, i.e. the
       sample description exactly as written in App. D.3 followed by its CNhs library id.
    Zero or several matches raise `FantomResolutionError` naming the candidates (e.g. technical replicates
    "..., tech_rep1"), so a person pins one.
    """
    if strand not in ("fwd", "rev"):
        raise FantomResolutionError(f"{tissue}: strand must be fwd or rev, got {strand!r}")
    names = list(index["name"])
    if pinned:
        hit = index[index["name"] == pinned]
        if hit.empty:
            near = [n for n in names if n.split(".")[0].lower() == pinned.split(".")[0].lower()]
            raise FantomResolutionError(f"{pinned!r}: pinned FANTOM5 file is not in the data-hub listing; "
                                        f"files with the same description: {near[:10]}")
        row = hit.iloc[0]
    else:
        if library:
            hit = index[[f".{library}." in n and n.endswith(f".{strand}.bw") for n in names]]
        else:
            pat = re.compile(re.escape(tissue) + r"\.CNhs\d+\..*\." + strand + r"\.bw$")
            hit = index[[bool(pat.fullmatch(n)) for n in names]]
        if len(hit) != 1:
            word = re.split(r"[ ,]", tissue)[0].lower()
            near = [n for n in names if word in n.lower() and n.endswith(f".{strand}.bw")]
            what = "no" if hit.empty else f"{len(hit)}"
            rule = f"'*.{library}.*.{strand}.bw'" if library else f"'<description>.CNhs<id>.*.{strand}.bw'"
            raise FantomResolutionError(
                f"{tissue!r} ({strand}): {what} data-hub file matches {rule}; "
                f"candidates: {(list(hit['name']) or near)[:12]}; pin one in the manifest's `file` column")
        row = hit.iloc[0]
    m = re.search(r"\.(CNhs\d+)\.", row["name"])
    return {"tissue": tissue, "strand": strand, "file": row["name"], "href": row["href"],
            "library": m[1] if m else ""}


def fetch_fantom_index(base_url: str, out, *, retries: int = 5, backoff: float = 2.0, session=None,
                       timeout: float = 60, sleep=time.sleep) -> pd.DataFrame:
    """Rule fantom_datahub_index: one GET of the FANTOM5 data-hub folder -> TSV of href and decoded name."""
    import requests

    s = session or requests.Session()
    for attempt in range(retries + 1):
        try:
            r = s.get(base_url, timeout=timeout)
            if r.status_code == 404:
                raise MissingObjectError(f"{base_url}: not found (HTTP 404); check download.fantom_base_url")
            r.raise_for_status()
            break
        except (requests.ConnectionError, requests.Timeout) as err:
            if attempt == retries:
                raise DownloadError(f"{base_url}: listing failed after {attempt + 1} attempt(s): {err}") from err
            sleep(backoff * 2 ** attempt)
    index = parse_index_hrefs(r.text)
    if index.empty:
        raise DownloadError(f"{base_url}: the page lists no .bw file; check download.fantom_base_url")
    with atomic_path(out) as tmp:
        index.to_csv(tmp, sep="\t", index=False)
    return index


def log_result(log_path, what: str, result) -> None:
    """One line per download job in its log (rules with a `run:` block run inside Snakemake's process, where
    reconfiguring logging would take over Snakemake's own)."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    Path(log_path).write_text(f"{_dt.datetime.now(_dt.timezone.utc).isoformat()} {what}: "
                              f"{json.dumps(result, default=str)}\n")


def write_lock_record(path, record: dict) -> None:
    write_json(path, record)


def merge_lock_records(record_paths: Iterable, out_path, order: list[str] | None = None) -> pd.DataFrame:
    """Join JSON lock records into one TSV, in `order` of names (the manifest order), else as given."""
    records = [json.loads(Path(p).read_text()) for p in record_paths]
    df = pd.DataFrame(records)
    for col in LOCK_COLUMNS:
        if col not in df.columns:
            df[col] = ""
    df = df[LOCK_COLUMNS + [c for c in df.columns if c not in LOCK_COLUMNS]]
    if order is not None:
        missing = sorted(set(order) - set(df["name"]))
        if missing:
            raise DownloadError(f"{out_path}: no lock record for {missing}")
        df = df.set_index("name").loc[order].reset_index()
    with atomic_path(out_path) as tmp:
        df.to_csv(tmp, sep="\t", index=False)
    return df


def write_ld_lock(lock_records, order: list[str], manifest, chromosomes, out_lock, out_excluded) -> tuple[int, int]:
    """Rule download_ukbb_ld_lock: the per-window lock records -> one TSV in manifest order, and the report of
    the manifest's excluded windows (long-range LD, absent) on `chromosomes`. Returns (files, excluded)."""
    records = []
    for p in lock_records:
        records += json.loads(Path(p).read_text())["files"]
    df = pd.DataFrame(records)
    df = df.set_index("name").loc[list(order)].reset_index()
    for col in LOCK_COLUMNS:
        if col not in df.columns:
            df[col] = ""
    with atomic_path(out_lock) as tmp:
        df[LOCK_COLUMNS].to_csv(tmp, sep="\t", index=False)
    _, excluded = read_window_manifest(manifest, chromosomes)
    with atomic_path(out_excluded) as tmp:
        excluded.to_csv(tmp, sep="\t", index=False)
    return len(df), len(excluded)


def write_tracks_lock(lock_records, bigwigs, order: list[str], out_lock, out_manifest, out_sizes) -> int:
    """Rule download_tracks_lock: the track lock TSV (manifest order), the features' track manifest (name,
    path) and the GRCh38 chromosome sizes read from the first bigWig."""
    import pyBigWig

    df = merge_lock_records(lock_records, out_lock, order=list(order))
    with atomic_path(out_manifest) as tmp:
        pd.DataFrame({"name": list(order), "path": [str(b) for b in bigwigs]}).to_csv(tmp, sep="\t", index=False)
    bw = pyBigWig.open(str(bigwigs[0]))
    sizes = pd.DataFrame(sorted(bw.chroms().items()), columns=["chromosome", "length"])
    bw.close()
    with atomic_path(out_sizes) as tmp:
        sizes.to_csv(tmp, sep="\t", index=False)
    return len(df)


def check_ld_manifest(manifest, out, *, bucket: str = UKBB_LD_BUCKET, prefix: str = UKBB_LD_PREFIX,
                      endpoint_url: str | None = None) -> pd.DataFrame:
    """Rule check_ukbb_ld_manifest: list the LD bucket once and write the manifest with corrected kinds;
    returns the rows whose kind changed."""
    man = pd.read_csv(manifest, sep="\t", comment="#", dtype={"chromosome": str})
    checked = check_window_manifest(man, list_ld_bucket(bucket, prefix, endpoint_url), prefix)
    with atomic_path(out) as tmp:
        checked.to_csv(tmp, sep="\t", index=False)
    return checked[checked["kind"] != man["kind"]]


def copy_local(src, dest, name: str | None = None) -> dict:
    """Copy a user-supplied archive (dbNSFP) into resources/, recording its md5."""
    return fetch(LocalRemote(src), dest, name=name, retries=0, progress=False)


def copy_local_archive(src, dest, lock, name: str = "dbnsfp") -> dict:
    """Rule dbnsfp_archive: copy the user's licence-gated archive and write its lock record."""
    if not src:
        raise ValueError("dbNSFP is licence-gated: download it yourself and set download.dbnsfp_archive to the archive path")
    rec = copy_local(src, dest, name=name)
    write_lock_record(lock, rec)
    return rec


__all__ = [
    "AccessDeniedError", "BILLING_ENV", "BillingProjectError", "DownloadError", "FantomResolutionError", "GCSRemote", "HTTPRemote",
    "LocalRemote", "MissingObjectError", "RemoteInfo", "S3Remote", "VerificationError", "adopt_existing", "billing_project",
    "copy_local", "etag_kind", "existing_record", "fetch", "gcs_client", "md5_file", "merge_lock_records", "parse_index_hrefs",
    "resolve_fantom_file", "s3_client", "verify", "windows_from_keys", "write_lock_record",
]
