"""Whether this process is the one that writes files and shows progress bars.

Engine-neutral: it never imports torch. A process is the main one unless a torch
process group is *initialised* (a real ``accelerate launch`` / ``torchrun`` run) and its
rank is not 0. A stray ``RANK`` variable in the environment of a single process does not
count: such a process still saves what it fits.
"""

from __future__ import annotations

import sys


def is_main_process() -> bool:
    """True unless this is a non-zero rank of an initialised torch process group."""
    dist = sys.modules.get("torch.distributed")
    if dist is None:
        return True
    try:
        if dist.is_available() and dist.is_initialized():
            return int(dist.get_rank()) == 0
    except (RuntimeError, ValueError):  # a group torn down between the two calls
        return True
    return True
