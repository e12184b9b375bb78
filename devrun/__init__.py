"""`make run`: the whole system on this machine, with the sample apps as production and staging."""
