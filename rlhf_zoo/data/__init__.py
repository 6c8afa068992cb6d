"""Packaged data sets: the human-labelled sentiment texts of Hutto & Gilbert (ICWSM 2014)."""

from rlhf_zoo.data.hutto import (
    HuttoSplit,
    Record,
    load_hutto,
    prompt_texts,
    split_hutto,
)

__all__ = ["HuttoSplit", "Record", "load_hutto", "prompt_texts", "split_hutto"]
