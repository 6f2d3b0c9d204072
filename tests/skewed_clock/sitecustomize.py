"""On PYTHONPATH, makes every clock reading of this Python process $CLOCK_SKEW_S seconds off.

The clock-skew test starts agents with it: a machine whose clock runs minutes ahead or behind.
"""

import os
import time

_skew = float(os.environ.get("CLOCK_SKEW_S", "0"))
if _skew:
    _real_time, _real_time_ns = time.time, time.time_ns
    time.time = lambda: _real_time() + _skew
    time.time_ns = lambda: _real_time_ns() + int(_skew * 1e9)
