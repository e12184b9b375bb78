"""Deploying: a commit onto a pool's servers (git, releases, the lock, the push hook and webhook).

Never imports `provisioner.scale`: how a server is reached comes in as `HostVars`
from `provisioner.app`, the one module that knows both.
"""
