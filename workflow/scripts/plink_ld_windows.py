"""Rule plink_ld_windows: one chromosome's LD windows from the PLINK panel, in the UKBB layout (paper App. D.1)."""
from deepwas.io import setup_logging
from deepwas.panel import build_ld_windows


def main(prefix, chrom, out_dir, report, length, stride, expected, log_path=None):
    setup_logging(log_path)
    rep = build_ld_windows(prefix, chrom, out_dir, length, stride, report_path=report)
    built = [w["window"] for w in rep["windows"]]
    if built != list(expected):
        raise RuntimeError(f"chr{chrom}: built windows {built} differ from the DAG's {list(expected)}; "
                           f"the .bim of {prefix} changed during the run: run again")


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    main(sm.params.prefix, sm.wildcards.chrom, sm.output.windows, sm.output.report, sm.params.length,
         sm.params.stride, sm.params.expected, sm.log[0])
