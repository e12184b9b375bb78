from __future__ import annotations

import sys

from provisioner.cli import main

sys.exit(main())
