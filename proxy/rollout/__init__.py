"""Progressive rollouts: a pure state machine driven by the canary judge, and the
controller that runs it inside every proxy (one leads, through a lease)."""
