"""``rlhf-zoo`` with the exact task's reward slowed by $SLOW_REWARD_S seconds a call, so that a test
can signal a short run while it is still training (the numbers are unchanged). With $SLOW_BUILD_S, each
build of a run's model (before its training starts) first appends a line to $BUILD_MARK, then sleeps
that long, so that a test can signal a command outside training."""

import os
import sys
import time

import rlhf_zoo.train
from rlhf_zoo.cli import main
from rlhf_zoo.tasks.exact import TableReward

_score = TableReward.score


def _slow_score(self, prompts, completions):
    time.sleep(float(os.environ.get("SLOW_REWARD_S", "0")))
    return _score(self, prompts, completions)


TableReward.score = _slow_score
_build = rlhf_zoo.train.build


def _slow_build(*args, **kwargs):
    if os.environ.get("BUILD_MARK"):
        with open(os.environ["BUILD_MARK"], "a") as f:
            f.write("build\n")
    time.sleep(float(os.environ.get("SLOW_BUILD_S", "0")))
    return _build(*args, **kwargs)


rlhf_zoo.train.build = _slow_build

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
