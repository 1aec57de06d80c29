"""mgrpo-bench: data -> base model -> every (method, G, T, seed) run -> evaluation -> tables -> figures -> report.

    snakemake --cores all                                                        # the toy default, on CPU
    snakemake --cores all --profile slurm --configfile config/paper.yaml         # the paper's grid, on SLURM

The rules are thin: each calls the `mgrpo` command line (or `python -m analysis`). See docs/workflow.md.
"""
import os
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

REPO = Path(workflow.basedir)
sys.path.insert(0, str(REPO))
# Methods come from this checkout's baselines/ (a drop-in baselines/<name>.py registers one); jobs inherit it.
os.environ.setdefault("MGRPO_BASELINES_DIR", str(REPO / "baselines"))
# wandb is optional and offline unless the user says otherwise; the local run files are the source of truth.
os.environ.setdefault("WANDB_MODE", "offline")


# The embedded default, unless --configfile names the whole configuration (config/paper.yaml is not a patch).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "config/schema.yaml")

include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/base_model.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/analyse.smk"
include: "workflow/rules/report.smk"

# Drop-in rules of baselines (baselines/<name>.smk), alphabetically, after the shared ones they may reuse.
for baseline_rules in sorted((REPO / "baselines").glob("*.smk")):

    include: str(baseline_rules)


rule all:
    default_target: True
    input:
        all_targets(),
