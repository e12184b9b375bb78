"""The provisioner: creates, configures, registers and retires app servers.

It serves the monitor's scale requests and writes the proxy's pools, meeting
both only in Redis through `state/`.
"""
