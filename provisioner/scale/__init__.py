"""Scaling: servers in and out of a pool (providers, provisioning steps, the worker, the policy).

Never imports `provisioner.deploy`: both use the shared pieces at the top of
`provisioner/`, and `provisioner.app` wires the two together.
"""
