"""A second, independent SP library: pysaml2 reads our metadata and accepts our Response."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import TestUser
from tests.conftest import require_service
from tests.helpers import saml

ENTITY_ID = "https://pysaml2-sp.example.com/metadata"
ACS = "https://pysaml2-sp.example.com/acs"


def make_pysaml2_client(app: Flask, http: FlaskClient, tmp_path: Path, **sp_options: Any) -> Any:
    """A pysaml2 SP configured from /saml/metadata and registered from its own metadata."""
    xmlsec1 = shutil.which("xmlsec1")
    require_service(xmlsec1 is not None, "pysaml2 needs xmlsec1 (apt-get install xmlsec1)")
    from saml2 import BINDING_HTTP_POST
    from saml2 import BINDING_HTTP_REDIRECT
    from saml2.client import Saml2Client
    from saml2.config import SPConfig
    from saml2.metadata import entity_descriptor

    key_pem, cert_pem = saml.sp_key_pair("pysaml2")
    (tmp_path / "sp.key").write_text(key_pem)
    (tmp_path / "sp.crt").write_text(cert_pem)
    config = SPConfig().load(
        {
            "entityid": ENTITY_ID,
            "metadata": {"inline": [http.get("/saml/metadata").data.decode()]},
            "service": {
                "sp": {
                    "endpoints": {
                        "assertion_consumer_service": [(ACS, BINDING_HTTP_POST)],
                        "single_logout_service": [
                            ("https://pysaml2-sp.example.com/slo", BINDING_HTTP_REDIRECT)
                        ],
                    },
                    "allow_unsolicited": False,
                    "authn_requests_signed": False,
                    "want_response_signed": True,
                    "want_assertions_signed": True,
                    **sp_options,
                }
            },
            "key_file": str(tmp_path / "sp.key"),
            "cert_file": str(tmp_path / "sp.crt"),
            "xmlsec_binary": xmlsec1,
            "allow_unknown_attributes": True,
        }
    )
    saml_metadata = str(entity_descriptor(config)).encode()
    from idp.saml.registration import register_sp_metadata

    with app.app_context():
        assert register_sp_metadata(saml_metadata) == ENTITY_ID
    return Saml2Client(config=config)


@pytest.fixture
def pysaml2_client(app: Flask, http: FlaskClient, tmp_path: Path) -> Any:
    return make_pysaml2_client(app, http, tmp_path, name_id_format=[saml.PERSISTENT])


def sign_in(http: FlaskClient, client: Any) -> Any:
    """Have the pysaml2 SP send its Redirect AuthnRequest; return the Response it accepted."""
    from saml2 import BINDING_HTTP_POST
    from saml2 import BINDING_HTTP_REDIRECT

    request_id, info = client.prepare_for_authenticate(
        entityid=saml.IDP_ENTITY_ID, relay_state="/home", binding=BINDING_HTTP_REDIRECT
    )
    location = dict(info["headers"])["Location"]
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == saml.SSO_URL
    form = saml.read_form(http.get(f"{parts.path}?{parts.query}"))
    assert form.action == ACS
    response = client.parse_authn_request_response(
        form.fields["SAMLResponse"], BINDING_HTTP_POST, outstanding={request_id: "/home"}
    )
    assert response is not None
    assert response.in_response_to == request_id
    return response


def test_pysaml2_reads_our_metadata(pysaml2_client: Any) -> None:
    from saml2 import BINDING_HTTP_POST
    from saml2 import BINDING_HTTP_REDIRECT

    metadata = pysaml2_client.metadata
    assert (
        metadata.single_sign_on_service(saml.IDP_ENTITY_ID, BINDING_HTTP_REDIRECT)[0]["location"]
        == saml.SSO_URL
    )
    assert (
        metadata.single_sign_on_service(saml.IDP_ENTITY_ID, BINDING_HTTP_POST)[0]["location"]
        == saml.SSO_URL
    )
    assert len(metadata.certs(saml.IDP_ENTITY_ID, "idpsso", "signing")) == 1


def test_pysaml2_accepts_our_response(
    http: FlaskClient, pysaml2_client: Any, logged_in: TestUser
) -> None:
    response = sign_in(http, pysaml2_client)
    identity = response.get_identity()
    assert identity["mail"] == [logged_in.email]
    assert identity["displayName"] == [logged_in.name]
    assert response.name_id.format == saml.PERSISTENT
    [(authn_class, _, _)] = response.authn_info()
    assert authn_class == "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
    assert response.session_info()["session_index"].startswith("_")


def test_pysaml2_asking_for_transient_ids_by_default_signs_in(
    app: Flask, http: FlaskClient, tmp_path: Path, logged_in: TestUser
) -> None:
    # No NameIDFormat in its metadata, NameIDPolicy Format="transient": a common default.
    client = make_pysaml2_client(app, http, tmp_path, name_id_policy_format=saml.TRANSIENT)
    with app.app_context():
        from idp.saml import storage

        sp = storage.get_service_provider(ENTITY_ID)
        assert sp is not None and sp.name_id_formats == []
    first, second = sign_in(http, client).name_id, sign_in(http, client).name_id
    assert first.format == second.format == saml.TRANSIENT
    assert first.text != second.text and logged_in.email not in first.text
