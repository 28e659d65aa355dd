# Summary statistics -> LD variants: allele alignment and a drop report per trait.


rule harmonise:
    input:
        sumstats=lambda wc: sumstats_input(wc.trait),
        ld_variants=all_ld_variant_lists(),
    output:
        table="results/harmonised/{trait}.tsv.gz",
        report="results/harmonised/{trait}.report.json",
    params:
        format=lambda wc: trait_value(wc.trait, "format"),
        n=lambda wc: trait_value(wc.trait, "n"),
        palindromic_max_maf=config["harmonise"]["palindromic_max_maf"],
        z_scale=config["harmonise"]["z_scale"],
        min_info=config["harmonise"]["min_info"],
        min_maf=config["harmonise"]["min_maf"],
    log:
        "logs/harmonise/{trait}.log",
    conda:
        "../../envs/deepwas.yaml"
    script:
        "../scripts/harmonise_trait.py"
