"""`mgrpo prepare-data` for the code benchmarks: a local copy from the public source, recorded in MANIFEST.json.

- MBPP+: evalplus's own downloader (its pinned release, `MbppPlus-<version>.jsonl.gz` from GitHub) fills evalplus's
  cache; the file is validated with our loader and copied to `<out>/mbpp_plus.jsonl`, which evaluation then hands
  to evalplus through `MBPP_OVERRIDE_PATH` (so nothing is downloaded at evaluation time).
- LiveCodeBench: the release files `test*.jsonl` of the Hub dataset `livecodebench/code_generation_lite`, fetched
  with `huggingface_hub.snapshot_download` at a resolved commit into `<out>/livecodebench/` (a temp folder, renamed
  when every file has parsed).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from mgrpo.atomic import atomic_dir, atomic_path
from mgrpo.evaluation.datasets import file_sha256, hf_token, network_access, record_in_manifest

# Where the code benchmarks come from (the math / multiple-choice sources are in their task files, lm_eval_tasks/).
MBPP_PLUS_RELEASE = "v0.2.0"  # evalplus 0.3.1's default MBPP+ version
LCB_REPO = "livecodebench/code_generation_lite"
LCB_REVISION = None  # None = the default branch at download time; the resolved commit goes into MANIFEST.json
LCB_FILES = "test*.jsonl"  # every release (release_vK = test.jsonl ... testK.jsonl); evaluation selects


def prepare_mbpp_plus(out_dir: Path) -> dict:
    from evalplus.data.utils import get_dataset_metadata, make_cache

    from mgrpo.evaluation.code import mbpp_plus

    url, cached = get_dataset_metadata("MbppPlus", MBPP_PLUS_RELEASE, mini=False, noextreme=False)
    with network_access("mbpp_plus", url, hub=False):
        make_cache(url, cached)  # evalplus downloads and un-gzips into its cache (no-op when already there)
    problems = mbpp_plus.load_problems(cached)  # names the file, line and field when malformed
    target = out_dir / "mbpp_plus.jsonl"
    with atomic_path(target) as tmp:
        shutil.copyfile(cached, tmp)
    return record_in_manifest(out_dir, "mbpp_plus", {"source": url, "revision": MBPP_PLUS_RELEASE, "path": target.name,
                                          "rows": len(problems), "sha256": file_sha256(target)})


def prepare_livecodebench(out_dir: Path) -> dict:
    from huggingface_hub import HfApi, snapshot_download

    from mgrpo.evaluation.code import livecodebench

    token = hf_token()
    with network_access("livecodebench", LCB_REPO):
        revision = HfApi().dataset_info(LCB_REPO, revision=LCB_REVISION, token=token).sha
    target = out_dir / "livecodebench"
    with atomic_dir(target) as staging:
        with network_access("livecodebench", LCB_REPO):
            snapshot_download(repo_id=LCB_REPO, repo_type="dataset", revision=revision, allow_patterns=[LCB_FILES],
                              local_dir=staging, token=token)
        shutil.rmtree(staging / ".cache", ignore_errors=True)  # huggingface_hub's download metadata
        files = livecodebench.release_files(staging)
        problems = livecodebench.load_problems(staging)  # every row parses, or the file and field are named
    return record_in_manifest(out_dir, "livecodebench", {
        "source": LCB_REPO, "revision": revision, "path": target.name, "rows": len(problems),
        "files": {f.name: file_sha256(target / f.name) for f in files}})


PREPARERS = {"mbpp_plus": prepare_mbpp_plus, "livecodebench": prepare_livecodebench}


def prepare_data(benchmark: str, out_dir: Path | str) -> dict:
    """Download one code benchmark into ``out_dir``; returns its MANIFEST.json entry."""
    if benchmark not in PREPARERS:
        raise ValueError(f"unknown code benchmark {benchmark!r}; known: {', '.join(PREPARERS)}")
    return PREPARERS[benchmark](Path(out_dir))
