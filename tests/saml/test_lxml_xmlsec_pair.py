"""The pinned lxml + xmlsec pair imports together and signs and verifies a document.

xmlsec's wheel carries its own libxml2 and refuses to load beside an lxml built on another
libxml2 series; an upgrade that breaks the pair must fail here, not in production.
"""

from __future__ import annotations

import pytest
import xmlsec
from lxml import etree

from tests.helpers import saml


def test_lxml_and_xmlsec_sign_and_verify_together() -> None:
    assert xmlsec.get_libxml_version() == etree.LIBXML_VERSION
    key_pem, cert_pem = saml.sp_key_pair()
    root = etree.fromstring(b'<doc xmlns="urn:example" ID="_doc"><value>42</value></doc>')
    signature = xmlsec.template.create(
        root, xmlsec.constants.TransformExclC14N, xmlsec.constants.TransformRsaSha256
    )
    root.append(signature)
    reference = xmlsec.template.add_reference(
        signature, xmlsec.constants.TransformSha256, uri="#_doc"
    )
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformEnveloped)
    xmlsec.tree.add_ids(root, ["ID"])
    context = xmlsec.SignatureContext()
    context.key = xmlsec.Key.from_memory(key_pem, xmlsec.constants.KeyDataFormatPem)
    context.sign(signature)

    signed = etree.fromstring(etree.tostring(root))
    xmlsec.tree.add_ids(signed, ["ID"])
    node = xmlsec.tree.find_node(signed, xmlsec.constants.NodeSignature)
    verifier = xmlsec.SignatureContext()
    verifier.key = xmlsec.Key.from_memory(cert_pem, xmlsec.constants.KeyDataFormatCertPem)
    verifier.verify(node)

    signed.find("{urn:example}value").text = "43"
    tampered = xmlsec.SignatureContext()
    tampered.key = xmlsec.Key.from_memory(cert_pem, xmlsec.constants.KeyDataFormatCertPem)
    with pytest.raises(xmlsec.VerificationError):
        tampered.verify(xmlsec.tree.find_node(signed, xmlsec.constants.NodeSignature))
