"""``rlhf-zoo`` with the exact task's reward slowed by $SLOW_REWARD_S seconds a call, so that a test
can signal a short run while it is still training (the numbers are unchanged)."""

import os
import sys
import time

from rlhf_zoo.cli import main
from rlhf_zoo.tasks.exact import TableReward

_score = TableReward.score


def _slow_score(self, prompts, completions):
    time.sleep(float(os.environ.get("SLOW_REWARD_S", "0")))
    return _score(self, prompts, completions)


TableReward.score = _slow_score

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
