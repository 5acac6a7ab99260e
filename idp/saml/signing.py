"""XML Signature and Encryption through xmlsec and python3-saml: sign ours, verify the SPs'.

Implements the signature rules of SAML Core §5 and Bindings §3.4.4.1 with an algorithm
allowlist (RSA and ECDSA with SHA-256 or better; SHA-1 refused).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

import xmlsec
from lxml import etree
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from idp.errors import SamlRequestError
from idp.keys.store import get_key_store
from idp.saml import NS_DS
from idp.saml import NS_SAML

RSA_SHA256: Final = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA1: Final = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA256: Final = "http://www.w3.org/2001/04/xmlenc#sha256"
EXC_C14N: Final = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED: Final = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

# The algorithms an SP may sign with; anything else (SHA-1, DSA, HMAC) is refused.
SIGNATURE_ALGORITHMS: Final = {
    RSA_SHA256: xmlsec.constants.TransformRsaSha256,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": xmlsec.constants.TransformRsaSha384,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": xmlsec.constants.TransformRsaSha512,
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": xmlsec.constants.TransformEcdsaSha256,
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": xmlsec.constants.TransformEcdsaSha384,
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": xmlsec.constants.TransformEcdsaSha512,
}
DIGEST_ALGORITHMS: Final = frozenset(
    {
        SHA256,
        "http://www.w3.org/2001/04/xmldsig-more#sha384",
        "http://www.w3.org/2001/04/xmlenc#sha512",
    }
)
CANONICALIZATIONS: Final = frozenset(
    {
        EXC_C14N,
        "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
    }
)
TRANSFORMS: Final = CANONICALIZATIONS | {ENVELOPED}


def _ds(name: str) -> str:
    return f"{{{NS_DS}}}{name}"


def signing_key(now: datetime) -> tuple[str, str]:
    """Return ``(private key PEM, certificate PEM)`` of the SAML key active at ``now``."""
    _, key_pem, cert_pem = get_key_store().saml_signing_key(now)
    return key_pem, cert_pem


def sign(element: etree._Element, key_pem: str, cert_pem: str) -> None:
    """Sign ``element`` in place: enveloped, RSA-SHA256, exclusive C14N, Reference to its ID.

    python3-saml places the signature after the first ``saml:Issuer`` of the whole document,
    so an Assertion is signed before it is put into its Response:
    https://github.com/SAML-Toolkits/python3-saml/blob/v1.16.0/src/onelogin/saml2/utils.py#L740-L744
    """
    OneLogin_Saml2_Utils.add_sign(
        element,
        key_pem,
        cert_pem,
        sign_algorithm=RSA_SHA256,
        digest_algorithm=SHA256,
    )


def sign_redirect_query(signed_octets: bytes, key_pem: str) -> bytes:
    """Return the RSA-SHA256 signature of an HTTP-Redirect query (Bindings §3.4.4.1)."""
    signature: bytes = OneLogin_Saml2_Utils.sign_binary(
        signed_octets, key_pem, algorithm=xmlsec.constants.TransformRsaSha256
    )
    return signature


def _require_algorithm(algorithm: str | None) -> None:
    if algorithm not in SIGNATURE_ALGORITHMS:
        raise SamlRequestError(
            "The signature algorithm is not accepted (RSA or ECDSA with SHA-256 or better)."
        )


def verify_redirect_signature(
    signed_octets: bytes, signature: bytes, sig_alg: str | None, certificates: Sequence[str]
) -> None:
    """Verify an HTTP-Redirect signature over the raw query octets with one of the SP's certs.

    Raises:
        SamlRequestError: the algorithm is not allowed or no certificate verifies it.

    """
    _require_algorithm(sig_alg)
    assert sig_alg is not None  # noqa: S101  (checked just above)
    # python3-saml's validate_binary_sign maps an unknown algorithm (ECDSA among them) to
    # RSA-SHA256 without a word; xmlsec is called directly so the SigAlg sent is the one used.
    # https://github.com/SAML-Toolkits/python3-saml/blob/v1.16.0/src/onelogin/saml2/utils.py#L1035-L1042
    transform = SIGNATURE_ALGORITHMS[sig_alg]
    for certificate in certificates:
        context = xmlsec.SignatureContext()
        try:
            context.key = xmlsec.Key.from_memory(certificate, xmlsec.constants.KeyDataFormatCertPem)
            context.verify_binary(signed_octets, transform, signature)
        except xmlsec.Error:
            continue
        return
    raise SamlRequestError("The request signature does not verify.")


def has_signature(root: etree._Element) -> bool:
    """Return whether the message carries any XML signature."""
    return next(root.iter(_ds("Signature")), None) is not None


def _one(parent: etree._Element, name: str) -> etree._Element:
    found = parent.findall(_ds(name))
    if len(found) != 1:
        raise SamlRequestError("The XML signature is malformed.")
    element: etree._Element = found[0]
    return element


def verify_enveloped_signature(root: etree._Element, certificates: Sequence[str]) -> None:
    """Verify the enveloped signature of a message's root element (SAML Core §5.4).

    The signature must be a child of the root and its one Reference must point at the root's
    ID, held by no other element: a signature over any other element is a forgery
    (signature wrapping, https://www.usenix.org/conference/usenixsecurity12/technical-sessions/presentation/somorovsky).

    Raises:
        SamlRequestError: the message is unsigned, wrapped, weak or does not verify.

    """
    signatures = list(root.iter(_ds("Signature")))
    if not signatures:
        raise SamlRequestError("The request must be signed.")
    if len(signatures) != 1 or signatures[0].getparent() is not root:
        raise SamlRequestError("The signature must cover the whole message.")
    signature = signatures[0]
    signed_info = _one(signature, "SignedInfo")
    c14n = _one(signed_info, "CanonicalizationMethod").get("Algorithm")
    if c14n not in CANONICALIZATIONS:
        raise SamlRequestError("The XML signature is malformed.")
    _require_algorithm(_one(signed_info, "SignatureMethod").get("Algorithm"))
    reference = _one(signed_info, "Reference")
    root_id = root.get("ID")
    if not root_id or reference.get("URI") != f"#{root_id}":
        raise SamlRequestError("The signature must cover the whole message.")
    if len(root.xpath("//*[@ID=$id]", id=root_id)) != 1:
        raise SamlRequestError("The signature must cover the whole message.")
    transforms = reference.find(_ds("Transforms"))
    algorithms = [] if transforms is None else [t.get("Algorithm") for t in transforms]
    if ENVELOPED not in algorithms or any(a not in TRANSFORMS for a in algorithms):
        raise SamlRequestError("The XML signature is malformed.")
    digest = _one(reference, "DigestMethod").get("Algorithm")
    if digest not in DIGEST_ALGORITHMS:
        raise SamlRequestError(
            "The signature algorithm is not accepted (RSA or ECDSA with SHA-256 or better)."
        )
    xmlsec.tree.add_ids(root, ["ID"])
    for certificate in certificates:
        verified = OneLogin_Saml2_Utils.validate_node_sign(
            signature, root, certificate, raise_exceptions=False
        )
        if verified is True:
            return
    raise SamlRequestError("The request signature does not verify.")


def encrypt_assertion(assertion: etree._Element, cert_pem: str) -> etree._Element:
    """Return a ``saml:EncryptedAssertion`` of ``assertion`` for the SP's certificate.

    AES-256-GCM for the content (CBC modes fall to padding oracles, Jager and Somorovsky
    2011) and RSA-OAEP for the key (SAML Core §6).
    """
    container = etree.Element(f"{{{NS_SAML}}}EncryptedAssertion", nsmap={"saml": NS_SAML})
    container.append(assertion)
    template = xmlsec.template.encrypted_data_create(
        container,
        xmlsec.constants.TransformAes256Gcm,
        type=xmlsec.constants.TypeEncElement,
        ns="xenc",
    )
    xmlsec.template.encrypted_data_ensure_cipher_value(template)
    key_info = xmlsec.template.encrypted_data_ensure_key_info(template, ns="ds")
    encrypted_key = xmlsec.template.add_encrypted_key(key_info, xmlsec.constants.TransformRsaOaep)
    xmlsec.template.encrypted_data_ensure_cipher_value(encrypted_key)
    manager = xmlsec.KeysManager()
    manager.add_key(xmlsec.Key.from_memory(cert_pem, xmlsec.constants.KeyDataFormatCertPem))
    context = xmlsec.EncryptionContext(manager)
    context.key = xmlsec.Key.generate(
        xmlsec.constants.KeyDataAes, 256, xmlsec.constants.KeyDataTypeSession
    )
    context.encrypt_xml(template, assertion)
    return container


def serialize(element: etree._Element) -> bytes:
    """Return the message as bytes (ASCII, other characters as references)."""
    data: bytes = etree.tostring(element)
    return data
