"""Why the control plane refuses something. Nothing was changed when one is raised."""

from __future__ import annotations


class ControlError(ValueError):
    """A user, key, wallet or tenant request refused; `code` is stable for `--json`."""

    code = "refused"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class AuthError(ControlError):
    """Missing, unknown or revoked key, missing scope, or a tenant the caller does not own."""

    code = "unauthorized"
