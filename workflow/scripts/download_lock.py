"""Rules download_ukbb_ld_lock and download_tracks_lock: per-file lock records -> one TSV in manifest order."""
import json
from pathlib import Path

import pandas as pd

from deepwas import downloads as dl
from deepwas.io import atomic_path, setup_logging, write_table


def ld_lock(sm, log):
    records = []
    for p in sm.input.locks:
        records += json.loads(Path(p).read_text())["files"]
    df = pd.DataFrame(records)
    df = df.set_index("name").loc[list(sm.params.order)].reset_index()
    write_table(sm.output.lock, df[dl.LOCK_COLUMNS])
    _, excluded = dl.read_window_manifest(sm.params.manifest, sm.params.chromosomes)
    write_table(sm.output.excluded, excluded)
    log.info("%d files locked; %d windows excluded", len(df), len(excluded))


def tracks_lock(sm, log):
    import pyBigWig

    df = dl.merge_lock_records(sm.input.locks, sm.output.lock, order=list(sm.params.order))
    manifest = pd.DataFrame({"name": list(sm.params.order), "path": list(sm.input.bigwigs)})
    write_table(sm.output.manifest, manifest)
    bw = pyBigWig.open(str(sm.input.bigwigs[0]))
    sizes = pd.DataFrame(sorted(bw.chroms().items()), columns=["chromosome", "length"])
    bw.close()
    with atomic_path(sm.output.sizes) as tmp:
        sizes.to_csv(tmp, sep="\t", index=False)
    log.info("%d tracks locked", len(df))


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    log = setup_logging(sm.log[0])
    (ld_lock if sm.rule == "download_ukbb_ld_lock" else tracks_lock)(sm, log)
