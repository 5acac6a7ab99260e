"""Demo data for ``idp init --demo``: users, groups, the Notes and Wiki clients, the Payroll SP."""

from __future__ import annotations

import os
from pathlib import Path
from xml.sax.saxutils import quoteattr

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from idp import db
from idp.keys.material import build_certificate
from idp.models.user import Group
from idp.oidc import storage as oidc_storage
from idp.oidc.clients import ClientSpec
from idp.oidc.clients import register_client
from idp.oidc.clients import validate_redirect_uri
from idp.saml.registration import register_sp_metadata
from idp.settings import get_settings
from idp.users import service
from idp.users import storage as users_storage

DEMO_USERS = (
    ("alice@example.com", "Alice Liddell", "alice-demo-password", False, ("staff", "finance")),
    ("bob@example.com", "Bob Builder", "bob-demo-password", False, ("staff",)),
    ("admin@example.com", "Ada Admin", "admin-demo-password", True, ("staff", "admins")),
)

NOTES_SECRET = "notes-demo-secret-not-for-production-0001"  # noqa: S105 (public demo value)
# The demo apps' addresses: the variables the apps read themselves (``make demo`` sets them all
# from DEMO_PORT_BASE), so the registrations follow apps moved to other ports.
DEMO_APPS = {
    "notes": ("NOTES_BASE_URL", "http://127.0.0.1:5001"),
    "wiki": ("WIKI_BASE_URL", "http://127.0.0.1:5002"),
    "payroll": ("PAYROLL_BASE_URL", "http://127.0.0.1:5003"),
}
PAYROLL_METADATA = """<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
    xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID={entity_id}>
  <md:SPSSODescriptor AuthnRequestsSigned="true" WantAssertionsSigned="true"
      protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>
      <ds:X509Certificate>{certificate}</ds:X509Certificate>
    </ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:SOAP"
        Location={soap_url}/>
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
        Location={slo_url}/>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
        Location={acs_url} index="1"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"""


def demo_base_url(app: str) -> str:
    """Return where the demo app ``app`` (notes, wiki, payroll) is served."""
    variable, default = DEMO_APPS[app]
    return os.environ.get(variable, default).rstrip("/")


def demo_clients() -> list[ClientSpec]:
    """Return the Notes and Wiki registrations, at the apps' current addresses."""
    notes, wiki = demo_base_url("notes"), demo_base_url("wiki")
    return [
        ClientSpec(
            client_id="notes",
            client_name="Notes",
            redirect_uris=[f"{notes}/callback"],
            post_logout_redirect_uris=[f"{notes}/"],
            backchannel_logout_uri=f"{notes}/backchannel-logout",
            client_secret=NOTES_SECRET,
            is_trusted=True,
        ),
        ClientSpec(
            client_id="wiki",
            client_name="Wiki",
            token_endpoint_auth_method="none",  # noqa: S106 (a method name)
            redirect_uris=[f"{wiki}/callback"],
            post_logout_redirect_uris=[f"{wiki}/"],
            backchannel_logout_uri=f"{wiki}/backchannel-logout",
            is_trusted=True,
        ),
    ]


def _group(name: str) -> Group:
    group = users_storage.get_group(name)
    if group is None:
        group = Group(name=name)
        users_storage.add_group(group)
    return group


def seed_demo() -> list[str]:
    """Create whatever demo data is missing; return one line per thing said."""
    lines = []
    for email, name, password, is_admin, groups in DEMO_USERS:
        user = service.get_user_by_email(email)
        if user is None:
            user = service.add_user(email, name=name, password=password, is_admin=is_admin)
            lines.append(f"Demo user {email} / {password}")
        else:
            lines.append(f"Demo user {email} exists (password {password})")
        user.groups = [_group(group) for group in groups]
        db.get_session().commit()
    for spec in demo_clients():
        lines.extend(_seed_client(spec))
    lines.append(_seed_payroll())
    return lines


def _seed_client(spec: ClientSpec) -> list[str]:
    assert spec.client_id is not None  # noqa: S101 (demo clients have fixed ids)
    client = oidc_storage.get_client(spec.client_id)
    if client is None:
        register_client(spec)
        return [f"Demo OIDC client {spec.client_id} ({spec.client_name})"]
    uris = (spec.redirect_uris, spec.post_logout_redirect_uris, spec.backchannel_logout_uri)
    if (
        client.redirect_uris,
        client.post_logout_redirect_uris,
        client.backchannel_logout_uri,
    ) == uris:
        return []
    # The demo moved to other ports since it was seeded: follow it.
    for uri in (*spec.redirect_uris, *spec.post_logout_redirect_uris):
        validate_redirect_uri(uri)
    client.redirect_uris = list(spec.redirect_uris)
    client.post_logout_redirect_uris = list(spec.post_logout_redirect_uris)
    client.backchannel_logout_uri = spec.backchannel_logout_uri
    db.get_session().commit()
    return [f"Demo OIDC client {spec.client_id} now at {spec.redirect_uris[0]}"]


def payroll_sp_dir() -> Path:
    """Return where the Payroll demo SP keeps its key pair (PAYROLL_SP_DIR, as Payroll reads)."""
    settings = get_settings()
    folder = os.environ.get("PAYROLL_SP_DIR") or Path(settings.instance_dir) / "payroll"
    return Path(folder)


def load_payroll_certificate(folder: Path) -> str:
    """Return the Payroll SP's certificate PEM, creating its key pair when there is none."""
    key_path, cert_path = folder / "sp.key", folder / "sp.crt"
    if key_path.exists() and cert_path.exists():
        return cert_path.read_text()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Readable by the owner only: it signs Payroll's requests.
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as key_file:
        key_file.write(pem)
    certificate = build_certificate(private, "Payroll demo SP", db.now())
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
    cert_path.write_text(cert_pem)
    return cert_pem


def _seed_payroll() -> str:
    base = demo_base_url("payroll")
    certificate = load_payroll_certificate(payroll_sp_dir())
    body = "".join(line for line in certificate.splitlines() if "-----" not in line)
    metadata = PAYROLL_METADATA.format(
        entity_id=quoteattr(f"{base}/saml/metadata"),
        certificate=body,
        slo_url=quoteattr(f"{base}/saml/sls"),
        soap_url=quoteattr(f"{base}/saml/soap"),  # back-channel logout (Payroll's SOAP_SLO_PATH)
        acs_url=quoteattr(f"{base}/saml/acs"),
    )
    entity_id = register_sp_metadata(metadata.encode(), replace=True, name="Payroll")
    return f"Demo SAML SP {entity_id} (Payroll)"
