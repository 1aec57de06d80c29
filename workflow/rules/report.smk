# Stage 6: results/report.md (every table and figure, one page), then, after a successful run, the
# Snakemake HTML report (results/report.html) with the captions in workflow/report/.
import yaml

from mgrpo.atomic import write_text


rule summary_report:
    input:
        tables=[f"{R}/tables/{name}.md" for name in TABLES],
        figures=[f"{R}/figures/{name}.png" for name in FIGURES],
    output:
        f"{R}/report.md",
    log:
        f"{LOGS}/analysis/report.log",
    shell:
        "python -m analysis report --out {output:q} --tables {input.tables:q} --figures {input.figures:q} > {log:q} 2>&1"


localrules:
    summary_report,


onsuccess:
    # Only a run whose DAG holds the whole grid (report.md's job): one that built a single target (a run's metrics,
    # one table) would report on a grid it did not check, and overwrite the full run's report_config.yaml.
    whole_grid = any(job.rule.name == "summary_report" for job in workflow.dag.jobs)
    if (config.get("report") or {}).get("html", True) and whole_grid:
        # The config this run used, --config overrides included (the config files alone would miss them).
        effective = Path(LOGS) / "report_config.yaml"
        effective.parent.mkdir(parents=True, exist_ok=True)
        write_text(effective, yaml.safe_dump(dict(config), sort_keys=False))
        shell(
            f"snakemake --snakefile {shlex.quote(str(workflow.main_snakefile))} --configfile {shlex.quote(str(effective))}"
            f" --nolock --report {shlex.quote(f'{R}/report.html')} > {shlex.quote(f'{LOGS}/report_html.log')} 2>&1"
            " || echo 'mgrpo-bench: the HTML report failed, see the log' >&2"
        )
