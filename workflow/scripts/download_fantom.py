"""Rule fantom_datahub_index: one GET of the FANTOM5 data-hub folder -> resources/tracks/fantom/datahub_index.tsv."""
import time

from deepwas import downloads as dl
from deepwas.io import setup_logging, write_table


def fetch_index(base_url: str, retries: int = 5, backoff: float = 2.0, session=None, timeout: float = 60):
    import requests

    s = session or requests.Session()
    for attempt in range(retries + 1):
        try:
            r = s.get(base_url, timeout=timeout)
            if r.status_code == 404:
                raise dl.MissingObjectError(f"{base_url}: not found (HTTP 404); check download.fantom_base_url")
            r.raise_for_status()
            break
        except (requests.ConnectionError, requests.Timeout) as err:
            if attempt == retries:
                raise dl.DownloadError(f"{base_url}: listing failed after {attempt + 1} attempt(s): {err}") from err
            time.sleep(backoff * 2 ** attempt)
    index = dl.parse_index_hrefs(r.text)
    if index.empty:
        raise dl.DownloadError(f"{base_url}: the page lists no .bw file; check download.fantom_base_url")
    return index


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    log = setup_logging(sm.log[0])
    index = fetch_index(sm.params.base_url, int(sm.params.retries), float(sm.params.backoff))
    write_table(sm.output[0], index)
    log.info("%s: %d bigWig files listed", sm.params.base_url, len(index))
