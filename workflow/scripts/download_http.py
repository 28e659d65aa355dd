"""Rules download_track_http, download_track_fantom, download_track_encode, download_chain,
download_sumstats_url: one HTTP file."""
import json
from pathlib import Path
from urllib.parse import urljoin

import pandas as pd

from deepwas import downloads as dl
from deepwas.io import setup_logging


def fantom_url(row: dict, index_path, base_url: str) -> tuple[str, dict]:
    """URL of a FANTOM manifest row: the pinned `file`, else the unique data-hub match (see resolve_fantom_file)."""
    index = pd.read_csv(index_path, sep="\t", dtype=str, keep_default_na=False)
    pinned = (row.get("file") or "").strip() or None
    hit = dl.resolve_fantom_file(index, row["tissue"], row["strand"], pinned, (row.get("library") or "").strip() or None)
    return urljoin(base_url if base_url.endswith("/") else base_url + "/", hit["href"]), hit


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    log = setup_logging(sm.log[0])
    out = sm.output[0]
    md5 = size = None
    if sm.rule == "download_track_encode":
        resolved = json.loads(Path(sm.input.resolved).read_text())
        url, md5, size = resolved["url"], resolved.get("md5"), resolved.get("size")
    elif sm.rule == "download_track_fantom":
        url, resolved = fantom_url(dict(sm.params.row), sm.input.index, sm.params.base_url)
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
    elif sm.rule == "download_track_fantom":
        rec.update({"file": resolved["file"], "library": resolved["library"], "tissue": resolved["tissue"],
                    "strand": resolved["strand"]})
    dl.write_lock_record(sm.output.lock, rec)
    log.info("fetched %s", rec)
