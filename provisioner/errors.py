"""One root exception for the package; subclasses also inherit the built-in they specialise."""

from __future__ import annotations

from settings import SettingsError


class ProvisionerError(Exception):
    """Root of every error the provisioner raises."""


class ConfigError(ProvisionerError, SettingsError):
    """A setting that cannot be used; the message names it and the accepted form."""


class ProviderError(ProvisionerError):
    """A cloud or local provider refused or failed an operation."""


class ProviderTimeout(ProviderError, TimeoutError):
    """A provider operation did not finish within its deadline."""


class ConfigureError(ProvisionerError):
    """The Ansible run did not configure the host."""


class HealthError(ProvisionerError):
    """A new server did not pass its health check in time."""


class StepFailed(ProvisionerError):
    """A provisioning step failed; the server was cleaned up (see `cleaned`)."""

    def __init__(self, server_id: str, step: str, cause: BaseException, *, cleaned: bool) -> None:
        super().__init__(f"server {server_id}: step {step!r} failed: {cause}")
        self.server_id = server_id
        self.step = step
        self.cause = cause
        self.cleaned = cleaned


class NotManaged(ProvisionerError, LookupError):
    """A server or URL that the provisioner did not create."""


class DeployInputError(ProvisionerError, ValueError):
    """A deploy was asked for with bad input (a sha, a ref line, an environment)."""


class DeployError(ProvisionerError):
    """A deploy or rollback did not complete; the message names the server and the task."""


class HostFailed(DeployError):
    """One server's step failed; `task` is the Ansible task (or our own step) that did."""

    def __init__(self, host: str, task: str, message: str) -> None:
        super().__init__(f"{host}: {message}")
        self.host = host
        self.task = task
