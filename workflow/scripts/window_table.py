"""Rule window_table: the core of every LD window, from the window manifest alone (no LD file is read)."""
import pandas as pd

from deepwas.io import setup_logging, write_table
from deepwas.windows import Window, core_table, region_intervals


def main(manifest, window_names, out, length, stride, regions, log_path=None):
    log = setup_logging(log_path)
    if manifest:
        man = pd.read_csv(manifest, sep="\t", comment="#", dtype={"chromosome": str})
    else:       # the demo: its tiled windows, all present
        ws = [Window.parse(n) for n in window_names]
        man = pd.DataFrame({"name": [w.name for w in ws], "chromosome": [w.chrom for w in ws],
                            "start": [w.start for w in ws], "end": [w.end for w in ws], "kind": "npz"})
    table = core_table(man, length, stride, region_intervals(regions))
    write_table(out, table)
    for status, n in table["status"].value_counts().items():
        log.info("%s: %d windows", status, n)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    p = sm.params
    main(sm.input.get("manifest"), p.windows, sm.output[0], p.length, p.stride, p.regions, sm.log[0])
