"""MBPP+ checker. Runs INSIDE the sandbox: evalplus's own ground-truth and checking code for one candidate.

Input: `task.json` in the cwd (the raw MbppPlus problem line, the candidate solution, a nonce, time settings).
Output: one line `<nonce> <json>` with evalplus's base and plus statuses.
"""
import json
import os
import sys


def main():
    with open("task.json") as handle:
        task = json.load(handle)
    os.remove("task.json")
    nonce = task.pop("nonce")
    out = sys.stdout
    from evalplus.data.mbpp import mbpp_deserialize_inputs
    from evalplus.eval._special_oracle import MBPP_OUTPUT_NOT_NONE_TASKS
    from evalplus.evaluate import check_correctness, get_groundtruth

    problem = task["problem"]
    task_id = problem["task_id"]
    problem["base_input"] = mbpp_deserialize_inputs(task_id, problem["base_input"])
    problem["plus_input"] = mbpp_deserialize_inputs(task_id, problem["plus_input"])
    # evalplus caches ground truth as a pickle under ~/.cache/evalplus/<hash>.pkl: HOME is this run's fresh work dir,
    # so nothing from an earlier run is ever loaded; the hash names the task for the cache file only.
    expected = get_groundtruth({task_id: problem}, f"mgrpo-{nonce}", MBPP_OUTPUT_NOT_NONE_TASKS)[task_id]
    result = check_correctness("mbpp", 0, problem, task["solution"], expected, base_only=False, fast_check=True,
                               identifier=task_id, min_time_limit=task["min_time_limit"],
                               gt_time_limit_factor=task["gt_time_limit_factor"])
    verdict = {"base_status": result["base"][0], "plus_status": result["plus"][0]}
    out.write("\n" + nonce + " " + json.dumps(verdict) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
