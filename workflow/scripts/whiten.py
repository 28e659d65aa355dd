"""Rule whiten: per trait and chromosome, the trait's view of every factorised window and its whitened
statistics (`deepwas.whitening.whiten_trait`), its per-window manifest and the counts of the windows and
variants where the trait lacks statistics."""
import pandas as pd

from deepwas.formats.factors import iter_factors
from deepwas.formats.whitened import write_whitened
from deepwas.harmonise import variant_key
from deepwas.io import setup_logging, write_json, write_table
from deepwas.whitening import whiten_trait


def main(harmonised, factor_dir, manifest, out, out_manifest=None, out_report=None, *, rtol, log_path=None,
         label="trait"):
    log = setup_logging(log_path)
    t = pd.read_csv(harmonised, sep="\t", dtype={"chromosome": str})
    key = variant_key(t).to_numpy()
    z, n, freq = (pd.Series(t[c].to_numpy(dtype=float), index=key) for c in ("z", "n", "eaf"))
    arrays, table, counts = whiten_trait(z, n, freq, iter_factors(factor_dir, manifest), rtol, label)
    write_whitened(out, arrays)
    if out_manifest:
        write_table(out_manifest, table)
    if out_report:
        write_json(out_report, counts)
    log.info("%s: whitened %d of %d windows; %d restricted (%d core variants without statistics: the trait's "
             "factors recomputed on the restricted window), %d without any core statistics", label,
             counts["windows_whitened"], counts["windows"], counts["windows_restricted"],
             counts["core_variants_without_statistics"], counts["windows_without_core_statistics"])


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    main(sm.input.harmonised, sm.input.factors, sm.input.manifest, sm.output.stats, sm.output.manifest,
         sm.output.report, rtol=sm.params.rtol, log_path=sm.log[0], label=sm.wildcards.trait)
