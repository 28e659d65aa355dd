# Summary statistics -> LD variants: allele alignment and a drop report per trait.


rule harmonise:
    input:
        sumstats=lambda wc: TRAITS.loc[wc.trait, "path"],
        ld_variants=all_ld_variant_lists(),
    output:
        table="results/harmonised/{trait}.tsv.gz",
        report="results/harmonised/{trait}.report.json",
    params:
        format=lambda wc: trait_value(wc.trait, "format") or "auto",
        n=lambda wc: trait_value(wc.trait, "n"),
        palindromic_max_maf=config["harmonise"]["palindromic_max_maf"],
        z_scale=config["harmonise"].get("z_scale", "correlation"),
    log:
        "logs/harmonise/{trait}.log",
    conda:
        "../../envs/deepwas.yaml"
    script:
        "../scripts/harmonise_trait.py"
