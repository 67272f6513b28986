"""Local device credentials: a certificate per thing, issued once by the stack's own CA."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from infra.local.broker_auth import (
    IOT_RULES,
    CredentialsError,
    device_credentials,
    issue_device_credentials,
)


def test_a_device_certificate_names_the_thing_and_is_issued_once(tmp_path: Path) -> None:
    # Given a thing provisioned locally
    first = issue_device_credentials(tmp_path, "router-0001")
    # Then its certificate's CN is the thing name, signed by the local CA
    certificate = x509.load_pem_x509_certificate(first.cert_file.read_bytes())
    ca = x509.load_pem_x509_certificate(first.ca_file.read_bytes())
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "router-0001"
    certificate.verify_directly_issued_by(ca)
    assert first.cert_file.parent == tmp_path / "devices" / "router-0001"
    assert first.key_file.stat().st_mode & 0o077 == 0
    # And provisioning it again returns the same credentials
    again = issue_device_credentials(tmp_path, "router-0001")
    assert again.certificate_id == first.certificate_id
    assert device_credentials(tmp_path, "router-0001") == first
    assert device_credentials(tmp_path, "router-0002") is None


@pytest.mark.parametrize("thing", ["a/b", "a+b", "#", "", IOT_RULES])
def test_names_that_could_escape_the_acl_are_refused(tmp_path: Path, thing: str) -> None:
    with pytest.raises(CredentialsError):
        issue_device_credentials(tmp_path, thing)
