"""Rules dbnsfp_scores and dbnsfp_table: the six dbNSFP scores of the LD variants (paper App. D.2), one
chromosome at a time streamed from the user's archive, then one annotation table (features.annotations) and
one report (`deepwas.features.dbnsfp`)."""
import pandas as pd

from deepwas.features.dbnsfp import combine_reports, dbnsfp_columns, dbnsfp_scores
from deepwas.formats.dbnsfp import read_dbnsfp_chunks
from deepwas.io import read_json, setup_logging, write_json, write_table


def chromosome(archive, liftover_table, chrom, match, indicator, chunk_rows, out_table, out_report):
    """Scores of the LD variants of `chrom` (its liftover table: GRCh37 keys, POS38, liftover_status)."""
    variants = pd.read_csv(liftover_table, sep="\t", dtype={"chromosome": str, "allele1": str, "allele2": str})
    chunks = read_dbnsfp_chunks(archive, chrom, dbnsfp_columns(match), chunk_rows=chunk_rows)
    table, report = dbnsfp_scores(variants, chunks, match=match, indicator=indicator)
    write_table(out_table, table)
    write_json(out_report, report)
    return report


def combine(tables, reports, out_table, out_report):
    """One table of every chromosome (the annotation table of features.annotations) and the summed report."""
    write_table(out_table, pd.concat([pd.read_csv(t, sep="\t", dtype={"chromosome": str}) for t in tables],
                                     ignore_index=True))
    report = combine_reports([read_json(r) for r in reports])
    write_json(out_report, report)
    return report


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    log = setup_logging(sm.log[0])
    if sm.rule == "dbnsfp_scores":
        p = sm.params
        rep = chromosome(sm.input.archive, sm.input.variants, sm.wildcards.chrom, p.match, p.indicator,
                         sm.config["features"]["dbnsfp"]["chunk_rows"], sm.output.table, sm.output.report)
    else:
        rep = combine(sm.input.tables, sm.input.reports, sm.output.table, sm.output.report)
    log.info("dbNSFP: %d of %d variants in dbNSFP (%d on the other strand), %d set to 0",
             rep["in_dbnsfp"], rep["variants"], rep["in_dbnsfp_complement_strand"], rep["not_in_dbnsfp_set_to_0"])
