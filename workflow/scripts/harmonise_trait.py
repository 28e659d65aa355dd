"""Rule harmonise: align one trait's summary statistics to the LD variants; write the table and drop report."""
import pandas as pd

from deepwas.formats.frequencies import read_reference_frequencies
from deepwas.formats.sumstats import read_sumstats
from deepwas.formats.ukbb_ld import read_ld_variants
from deepwas.harmonise import harmonise
from deepwas.io import setup_logging, write_json, write_table


def main(sumstats, fmt, n, ld_variant_files, out_table, out_report, palindromic_max_maf, z_scale="correlation",
         min_info=0.0, min_maf=0.0, log_path=None, *, trait=None, reference_frequencies=None, min_match_rate=None,
         strand_flip_threshold=0.9, n_max_spread=0.1):
    log = setup_logging(log_path)
    ld = pd.concat([read_ld_variants(p) for p in ld_variant_files], ignore_index=True)
    ld = ld.drop_duplicates(["chromosome", "position", "allele1", "allele2"]).reset_index(drop=True)
    # formats without positions (LDSC .sumstats) are placed by rsid through the LD variant lists
    positions = ld.rename(columns={"rsid": "SNP", "chromosome": "CHR", "position": "POS"})[["SNP", "CHR", "POS"]]
    stats, read_report = read_sumstats(sumstats, fmt=fmt, n=n, min_info=min_info or None, min_maf=min_maf or None,
                                       positions=positions)
    ref = read_reference_frequencies(reference_frequencies) if reference_frequencies else None
    table, report = harmonise(stats, ld, palindromic_max_maf=palindromic_max_maf, source=str(sumstats), z_scale=z_scale,
                              trait=trait, ref_freq=ref, min_match_rate=min_match_rate,
                              strand_flip_threshold=strand_flip_threshold, n_max_spread=n_max_spread)
    for w in report["warnings"]:
        log.warning(w)
    report = {"read": read_report, "harmonise": report}
    write_table(out_table, table)
    write_json(out_report, report)
    log.info("harmonised %s: %s", sumstats, report)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    p = sm.params
    main(sm.input.sumstats, p.format, p.n, p.ld_variants, sm.output.table, sm.output.report,
         p.palindromic_max_maf, p.z_scale, p.min_info, p.min_maf, sm.log[0], trait=sm.wildcards.trait,
         reference_frequencies=p.reference_frequencies, min_match_rate=p.min_match_rate,
         strand_flip_threshold=p.strand_flip_threshold, n_max_spread=p.n_max_spread)
