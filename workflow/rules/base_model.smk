# Stage 2: base models: the tiny toy model is pre-trained here; hub models are downloaded once.
PRETRAINED = [m for m in MODELS if "pretrain" in config["base_models"][m]]
DOWNLOADED = [m for m in MODELS if "hub" in config["base_models"][m]]

if PRETRAINED:

    rule pretrain_base_model:
        input:
            DATA_FILES,
        output:
            directory(f"{R}/base_models/{{model}}"),
        wildcard_constraints:
            model="|".join(re.escape(m) for m in PRETRAINED),
        params:
            data=lambda wildcards, input: os.path.dirname(input[0]),
            seed=lambda wc: config["base_models"][wc.model]["pretrain"].get("seed", 0),
            options=lambda wc: shlex.join(
                grid.option_flags(config["base_models"][wc.model]["pretrain"].get("options") or {})
            ),
        resources:
            **rule_resources("pretrain"),
        log:
            f"{LOGS}/pretrain/{{model}}.log",
        shell:
            "mgrpo pretrain --data {params.data:q} --out {output:q} --seed {params.seed} {params.options} > {log:q} 2>&1"


if DOWNLOADED:

    localrules:
        download_base_model,

    # Needs hub access (run on a login node): nothing else in the DAG downloads anything.
    rule download_base_model:
        output:
            directory("models/{model}"),
        wildcard_constraints:
            model="|".join(re.escape(m) for m in DOWNLOADED),
        params:
            hub=lambda wc: config["base_models"][wc.model]["hub"],
        log:
            f"{LOGS}/download/{{model}}.log",
        shell:
            "hf download {params.hub:q} --local-dir {output:q} > {log:q} 2>&1"
