# Stage 4: `mgrpo evaluate` on the chosen checkpoints (best, final) of every run and on each base model.
# A job finds its data folder from its first data input (common.smk's benchmark_dir).
if DATA_KIND == "toy":
    EVAL_DATA = DATA_FILES
else:
    # The job's output is this record beside the folder, not the folder: when the benchmark list changes,
    # Snakemake deletes only the record, and --keep-present fetches only what is not there intact.
    EVAL_DATA = [f"{BENCHMARK_DIR}.prepared.txt"]  # BENCHMARK_DIR: data.smk

    localrules:
        prepare_benchmarks,

    # Needs hub access; done once per benchmark. GPQA stays out of any repository.
    rule prepare_benchmarks:
        output:
            EVAL_DATA,
        params:
            benchmarks=",".join(BENCHMARKS),
            out=lambda wildcards, output: benchmark_dir(output[0]),
        log:
            f"{LOGS}/prepare_benchmarks.log",
        shell:
            "mgrpo prepare-data --benchmarks {params.benchmarks} --out {params.out:q} --keep-present > {output:q} 2> {log:q}"


EVAL_PARAMS = dict(
    benchmarks=",".join(BENCHMARKS),
    backend=EVAL.get("backend", "hf"),
    data_dir=lambda wildcards, input: benchmark_dir(input.data[0]),
    temperature=EVAL.get("temperature", 0.8),
    # Only when the config overrides it: otherwise `mgrpo evaluate` applies the paper's per-benchmark k.
    samples=f" --samples {EVAL['samples']}" if "samples" in EVAL else "",
    # vLLM engines: GPUs per engine (tensor parallel) and engines per job (data parallel); keep their product
    # equal to resources.evaluate.gpu.
    parallel="".join(f" --{key.replace('_', '-')} {EVAL[key]}"
                     for key in ("tensor_parallel_size", "data_parallel_size") if key in EVAL),
    guard=backend_guard("vllm", "vllm (evaluation backend)") if EVAL.get("backend") == "vllm" else "",
    code_options="".join(f" --code-option {shlex.quote(f'{key}={json.dumps(value)}')}"
                         for key, value in EVAL.get("code_options", {}).items()),
)
# --cache: results also kept outside the outputs (Snakemake deletes those before a rerun), reused while the
# checkpoint's files, the data and the settings are unchanged: adding a benchmark evaluates only that one.
EVALUATE_SHELL = (
    "{params.guard}mgrpo evaluate --model {input.model:q} --benchmarks {params.benchmarks} --out {params.out:q}"
    " --cache {params.cache:q} --backend {params.backend} --data-dir {params.data_dir:q}"
    " --temperature {params.temperature}{params.samples}{params.parallel}{params.code_options} > {log:q} 2>&1"
)


rule evaluate_checkpoint:
    input:
        model=f"{RUN}/{{checkpoint}}",
        data=EVAL_DATA,
    output:
        [f"{EVAL_RUN}/{b}.json" for b in BENCHMARKS],
    params:
        out=EVAL_RUN,
        cache=f"{WORK}/{EVAL_RUN.removeprefix(f'{R}/')}",
        **EVAL_PARAMS,
    resources:
        **rule_resources("evaluate"),
    log:
        f"{LOGS}/eval/{{model}}/{{method}}/G{{G}}_T{{T}}_s{{seed}}_{{checkpoint}}.log",
    shell:
        EVALUATE_SHELL


rule evaluate_base_model:
    input:
        model=lambda wc: base_model_dir(wc.model),
        data=EVAL_DATA,
    output:
        [f"{EVAL_BASE}/{b}.json" for b in BENCHMARKS],
    params:
        out=EVAL_BASE,
        cache=f"{WORK}/{EVAL_BASE.removeprefix(f'{R}/')}",
        **EVAL_PARAMS,
    resources:
        **rule_resources("evaluate"),
    log:
        f"{LOGS}/eval/{{model}}/base.log",
    shell:
        EVALUATE_SHELL
