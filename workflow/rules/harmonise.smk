# Summary statistics -> LD variants: allele alignment and a drop report per trait.


rule harmonise:
    input:
        sumstats=lambda wc: sumstats_input(wc.trait),
        ld_variants=all_ld_variant_inputs(),
        reference_frequencies=lambda wc: config["harmonise"]["reference_frequencies"] or [],
    output:
        table="results/harmonised/{trait}.tsv.gz",
        report=report(
            "results/harmonised/{trait}.report.json",
            caption="../report/harmonise.rst",
            category="Checks",
            subcategory="Harmonisation",
            labels={"trait": "{trait}"},
        ),
    log:
        "logs/harmonise/{trait}.log",
    priority: 10
    conda:
        "../../envs/deepwas.yaml"
    params:
        ld_variants=all_ld_variant_lists(),
        format=lambda wc: trait_value(wc.trait, "format"),
        n=lambda wc: trait_value(wc.trait, "n"),
        palindromic_max_maf=config["harmonise"]["palindromic_max_maf"],
        z_scale=config["harmonise"]["z_scale"],
        min_info=config["harmonise"]["min_info"],
        min_maf=config["harmonise"]["min_maf"],
        min_match_rate=config["harmonise"]["min_match_rate"],
        strand_flip_threshold=config["harmonise"]["strand_flip_threshold"],
        n_max_spread=config["harmonise"]["n_max_spread"],
        reference_frequencies=config["harmonise"]["reference_frequencies"],
    script:
        "../scripts/harmonise_trait.py"
