"""Proxy errors carry the response they become; `ClientConnection.fail` is the one
place that turns them into bytes on the wire."""

from __future__ import annotations

import json


class ProxyError(Exception):
    status = 500
    code = "internal_error"
    # Header lines the response carries besides its body's (e.g. a 405's Allow).
    extra: tuple[tuple[bytes, bytes], ...] = ()

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def body(self) -> bytes:
        return json.dumps({"error": self.code, "message": self.message, **self.details}).encode()


class BadRequest(ProxyError):
    status = 400
    code = "bad_request"


class Unauthorized(ProxyError):
    status = 401
    code = "unauthorized"


class Forbidden(ProxyError):
    status = 403
    code = "forbidden"


class FlagBlocked(Forbidden):
    code = "feature_disabled"


class NoPreview(ProxyError):
    status = 404
    code = "no_preview"


class MethodNotAllowed(ProxyError):
    status = 405
    code = "method_not_allowed"


class ConnectNotAllowed(MethodNotAllowed):
    # RFC 9110 15.5.6: a 405 names what is allowed; a reverse proxy opens no tunnels by CONNECT.
    extra = ((b"Allow", b"GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS"),)


class RequestTimeout(ProxyError):
    status = 408
    code = "request_timeout"


class PayloadTooLarge(ProxyError):
    status = 413
    code = "payload_too_large"


class HeaderTooLarge(ProxyError):
    status = 431
    code = "request_header_fields_too_large"


class NotImplementedByProxy(ProxyError):
    status = 501
    code = "not_implemented"


class BadGateway(ProxyError, ConnectionError):
    status = 502
    code = "bad_gateway"


class NoBackend(ProxyError):
    status = 503
    code = "no_backend"


class StateUnreachable(ProxyError):
    status = 503
    code = "state_unavailable"


class VersionNotSupported(ProxyError):
    status = 505
    code = "http_version_not_supported"


class GatewayTimeout(ProxyError, TimeoutError):
    status = 504
    code = "gateway_timeout"
