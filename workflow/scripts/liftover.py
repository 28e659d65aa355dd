"""Rule liftover_ld_variants: GRCh38 positions of one chromosome's LD variants, unmapped ones counted and NA."""
import pandas as pd

from deepwas.formats.ukbb_ld import read_ld_variants
from deepwas.io import setup_logging, write_json, write_table
from deepwas.liftover import liftover_table, load_chain

if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    log = setup_logging(sm.log[0])
    ld = pd.concat([read_ld_variants(p) for p in sm.params.variants], ignore_index=True)
    ld = ld.drop_duplicates(["chromosome", "position", "allele1", "allele2"]).reset_index(drop=True)
    table, report = liftover_table(ld, load_chain(sm.input.chain))
    write_table(sm.output.table, table)
    write_json(sm.output.report, {"chromosome": sm.wildcards.chrom, **report})
    log.info("liftover chr%s: %s", sm.wildcards.chrom, report)
