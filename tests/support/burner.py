"""A process that burns one core while its flag file exists, then idles.

`python tests/support/burner.py FLAG MAX_S`: burns while FLAG exists, sleeps
once it is removed, and exits on its own after MAX_S seconds whatever
happens, so a test that dies cannot leave it spinning.
"""

from __future__ import annotations

import os
import sys
import time


def main() -> int:
    flag, max_s = sys.argv[1], float(sys.argv[2])
    deadline = time.monotonic() + max_s
    while time.monotonic() < deadline:
        if os.path.exists(flag):
            until = time.monotonic() + 0.02
            while time.monotonic() < until:
                pass
        else:
            time.sleep(0.02)
    return 0


if __name__ == "__main__":
    sys.exit(main())
