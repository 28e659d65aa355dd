"""Rule harmonise: align one trait's summary statistics to the LD variants; write the table and drop report."""
import pandas as pd

from deepwas.formats.sumstats import read_sumstats
from deepwas.formats.ukbb_ld import read_ld_variants
from deepwas.harmonise import harmonise
from deepwas.io import setup_logging, write_json, write_table


def main(sumstats, fmt, n, ld_variant_files, out_table, out_report, palindromic_max_maf, z_scale="correlation", log_path=None):
    log = setup_logging(log_path)
    stats, read_report = read_sumstats(sumstats, fmt=fmt, n=n)
    ld = pd.concat([read_ld_variants(p) for p in ld_variant_files], ignore_index=True)
    ld = ld.drop_duplicates(["chromosome", "position", "allele1", "allele2"]).reset_index(drop=True)
    table, report = harmonise(stats, ld, palindromic_max_maf=palindromic_max_maf, source=str(sumstats), z_scale=z_scale)
    report = {"read": read_report, "harmonise": report}
    write_table(out_table, table)
    write_json(out_report, report)
    log.info("harmonised %s: %s", sumstats, report)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    main(sm.input.sumstats, sm.params.format, sm.params.n, sm.input.ld_variants, sm.output.table,
         sm.output.report, sm.params.palindromic_max_maf, sm.params.z_scale, sm.log[0])
