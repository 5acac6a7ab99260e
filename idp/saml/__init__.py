"""SAML 2.0 Identity Provider on the shared login: names from the SAML 2.0 specs, verbatim.

The cross-protocol logout reaches SAML SPs through :mod:`idp.saml.logout`: signed
LogoutRequests by SOAP (back-channel) where the SP has a SOAP endpoint, else in the browser.
"""

from __future__ import annotations

from typing import Final

NS_SAML: Final = "urn:oasis:names:tc:SAML:2.0:assertion"
NS_SAMLP: Final = "urn:oasis:names:tc:SAML:2.0:protocol"
NS_MD: Final = "urn:oasis:names:tc:SAML:2.0:metadata"
NS_DS: Final = "http://www.w3.org/2000/09/xmldsig#"
NS_XENC: Final = "http://www.w3.org/2001/04/xmlenc#"
NSMAP: Final = {"saml": NS_SAML, "samlp": NS_SAMLP, "md": NS_MD, "ds": NS_DS, "xenc": NS_XENC}

BINDING_REDIRECT: Final = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
BINDING_POST: Final = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
BINDING_SOAP: Final = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP"
NS_SOAP_ENV: Final = "http://schemas.xmlsoap.org/soap/envelope/"
PROTOCOL: Final = "urn:oasis:names:tc:SAML:2.0:protocol"

NAMEID_PERSISTENT: Final = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
NAMEID_TRANSIENT: Final = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
NAMEID_EMAIL: Final = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
NAMEID_UNSPECIFIED: Final = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
NAMEID_ENTITY: Final = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
# Metadata lists them in this order; persistent is the default.
NAMEID_FORMATS: Final = (NAMEID_PERSISTENT, NAMEID_EMAIL, NAMEID_TRANSIENT, NAMEID_UNSPECIFIED)

CM_BEARER: Final = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
AC_PASSWORD: Final = "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"  # noqa: S105 (a URN)
AC_PASSWORD_PROTECTED_TRANSPORT: Final = (
    "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"  # noqa: S105 (a URN)
)
AC_UNSPECIFIED: Final = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"
AC_MFA: Final = "https://refeds.org/profile/mfa"

STATUS_SUCCESS: Final = "urn:oasis:names:tc:SAML:2.0:status:Success"
STATUS_REQUESTER: Final = "urn:oasis:names:tc:SAML:2.0:status:Requester"
STATUS_RESPONDER: Final = "urn:oasis:names:tc:SAML:2.0:status:Responder"
STATUS_VERSION_MISMATCH: Final = "urn:oasis:names:tc:SAML:2.0:status:VersionMismatch"
STATUS_AUTHN_FAILED: Final = "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"
STATUS_INVALID_NAMEID_POLICY: Final = "urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy"
STATUS_NO_AUTHN_CONTEXT: Final = "urn:oasis:names:tc:SAML:2.0:status:NoAuthnContext"
STATUS_NO_PASSIVE: Final = "urn:oasis:names:tc:SAML:2.0:status:NoPassive"
STATUS_REQUEST_DENIED: Final = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied"
STATUS_UNKNOWN_PRINCIPAL: Final = "urn:oasis:names:tc:SAML:2.0:status:UnknownPrincipal"
STATUS_PARTIAL_LOGOUT: Final = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout"
# Second-level codes travel inside the top-level code the SAML Core §3.2.2.2 table gives them.
TOP_LEVEL_STATUS: Final = {
    STATUS_AUTHN_FAILED: STATUS_RESPONDER,
    STATUS_INVALID_NAMEID_POLICY: STATUS_REQUESTER,
    STATUS_NO_AUTHN_CONTEXT: STATUS_RESPONDER,
    STATUS_NO_PASSIVE: STATUS_RESPONDER,
    STATUS_REQUEST_DENIED: STATUS_RESPONDER,
    STATUS_UNKNOWN_PRINCIPAL: STATUS_REQUESTER,
    STATUS_PARTIAL_LOGOUT: STATUS_SUCCESS,
}

LOGOUT_REASON_USER: Final = "urn:oasis:names:tc:SAML:2.0:logout:user"
LOGOUT_REASON_ADMIN: Final = "urn:oasis:names:tc:SAML:2.0:logout:admin"
