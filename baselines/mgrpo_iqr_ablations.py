"""M-GRPO+IQR with the filter acting on one half only: which half of the IQR filter does what.

The paper's filter drops a low-entropy outlier from both the vote and the loss. These ablations keep it in one:
``mgrpo_iqr_vote`` drops it from the vote only (it is still trained, rewarded against the filtered vote);
``mgrpo_iqr_loss`` drops it from the loss only (it still votes). docs/toy_study.md has what they show on the toy.
"""
from mgrpo.core import Method, register_method

register_method(
    Method("mgrpo_iqr_vote", reward="agreement", momentum=True, entropy_filter=True, filter_scope="vote",
           description="M-GRPO+IQR ablation: filtered rollouts leave the vote but stay in the loss"),
    origin=__file__,
)
register_method(
    Method("mgrpo_iqr_loss", reward="agreement", momentum=True, entropy_filter=True, filter_scope="loss",
           description="M-GRPO+IQR ablation: filtered rollouts leave the loss but still vote"),
    origin=__file__,
)
