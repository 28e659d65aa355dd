# Summary statistics -> LD variants: allele alignment and a drop report per trait.


rule harmonise:
    input:
        sumstats=lambda wc: sumstats_input(wc.trait),
        ld_variants=all_ld_variant_inputs(),
    output:
        table="results/harmonised/{trait}.tsv.gz",
        report="results/harmonised/{trait}.report.json",
    params:
        ld_variants=all_ld_variant_lists(),
        format=lambda wc: trait_value(wc.trait, "format") or "auto",
        n=lambda wc: trait_value(wc.trait, "n"),
        palindromic_max_maf=config["harmonise"]["palindromic_max_maf"],
        z_scale=config["harmonise"].get("z_scale", "correlation"),
        min_info=config["harmonise"].get("min_info", 0.0),
        min_maf=config["harmonise"].get("min_maf", 0.0),
    log:
        "logs/harmonise/{trait}.log",
    conda:
        "../../envs/deepwas.yaml"
    script:
        "../scripts/harmonise_trait.py"
