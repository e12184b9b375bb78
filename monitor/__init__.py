"""The monitor: samples a host, runs alert rules, sends email and webhook notices, and
steers the system (the canary kill switch, scale requests) through Redis."""
