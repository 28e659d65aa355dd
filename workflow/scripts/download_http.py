"""Rules download_track_http, download_track_encode, download_chain, download_sumstats_url: one HTTP file."""
import json
from pathlib import Path

from deepwas import downloads as dl
from deepwas.io import setup_logging

if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    log = setup_logging(sm.log[0])
    out = sm.output[0]
    md5 = size = None
    if sm.rule == "download_track_encode":
        resolved = json.loads(Path(sm.input.resolved).read_text())
        url, md5, size = resolved["url"], resolved.get("md5"), resolved.get("size")
    else:
        url = sm.params.url
    if "<" in url:
        raise ValueError(f"{url}: this manifest row is not pinned yet (placeholder in the file name); "
                         "fill in the exact file name from the source's listing (see the manifest header)")
    rec = dl.fetch(dl.HTTPRemote(url, md5=md5, size=int(size) if size else None), out,
                   name=getattr(sm.wildcards, "track", Path(out).name),
                   retries=int(sm.params.retries), backoff=float(sm.params.backoff))
    if sm.rule == "download_track_encode":
        rec.update({k: resolved[k] for k in ("experiment", "file", "output_type")})
    dl.write_lock_record(sm.output.lock, rec)
    log.info("fetched %s", rec)
