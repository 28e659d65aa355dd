"""Rule harmonise: align one trait's summary statistics to the LD variants; write the table and drop report."""
import pandas as pd

from deepwas.formats.sumstats import read_sumstats
from deepwas.formats.ukbb_ld import read_ld_variants
from deepwas.harmonise import harmonise
from deepwas.io import setup_logging, write_json, write_table


def main(sumstats, fmt, n, ld_variant_files, out_table, out_report, palindromic_max_maf, z_scale="correlation",
         min_info=0.0, min_maf=0.0, log_path=None):
    log = setup_logging(log_path)
    ld = pd.concat([read_ld_variants(p) for p in ld_variant_files], ignore_index=True)
    ld = ld.drop_duplicates(["chromosome", "position", "allele1", "allele2"]).reset_index(drop=True)
    # formats without positions (LDSC .sumstats) are placed by rsid through the LD variant lists
    positions = ld.rename(columns={"rsid": "SNP", "chromosome": "CHR", "position": "POS"})[["SNP", "CHR", "POS"]]
    stats, read_report = read_sumstats(sumstats, fmt=fmt, n=n, min_info=min_info or None, min_maf=min_maf or None,
                                       positions=positions)
    table, report = harmonise(stats, ld, palindromic_max_maf=palindromic_max_maf, source=str(sumstats), z_scale=z_scale)
    report = {"read": read_report, "harmonise": report}
    write_table(out_table, table)
    write_json(out_report, report)
    log.info("harmonised %s: %s", sumstats, report)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    main(sm.input.sumstats, sm.params.format, sm.params.n, sm.params.ld_variants, sm.output.table,
         sm.output.report, sm.params.palindromic_max_maf, sm.params.z_scale, sm.params.min_info, sm.params.min_maf,
         sm.log[0])
