"""SRT / TTRL: the majority answer over the policy's own G rollouts is the pseudo-label; reward = agreement.

SRT+IQR comes for free as an ablation: the same reward with M-GRPO's entropy filter and no momentum model.
"""
from mgrpo.core import Method, register_method

register_method(
    Method("srt", reward="agreement", description="SRT: majority-vote self-reward over the policy's G rollouts"),
    origin=__file__,
)
register_method(
    Method("srt_iqr", reward="agreement", entropy_filter=True,
           description="SRT with the IQR entropy filter (ablation: M-GRPO+IQR without momentum)"),
    origin=__file__,
)
