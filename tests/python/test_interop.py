"""Clients the team did not write, with their default settings, against real sigil processes:
py-spiffe (PyPI `spiffe`, grpc-core underneath) on the agent's Workload API socket, and plain
grpcio channels on the server's and the agent's admin sockets. grpc-core sends the socket path
as the HTTP/2 `:authority`; before sigil-listen's authority fix every call here failed with
INTERNAL "Stream removed" (RST_STREAM PROTOCOL_ERROR from h2)."""

import threading

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from spiffe import JwtSvid, TrustDomain, WorkloadApiClient
from spiffe.workloadapi.errors import ValidateJwtSvidError

from conftest import TRUST_DOMAIN

TD = TrustDomain(TRUST_DOMAIN)
# grpc.health.v1 HealthCheckResponse{status: SERVING}: field 1, varint 1.
SERVING = b"\x08\x01"


@pytest.fixture
def client(deployment):
    client = WorkloadApiClient(socket_path="unix:" + deployment.workload_socket, default_timeout=10)
    yield client
    client.close()


def assert_signed_by_bundle(leaf, authorities):
    """The leaf's signature verifies under one of the bundle's X.509 authorities."""
    for authority in authorities:
        try:
            authority.public_key().verify(
                leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(leaf.signature_hash_algorithm))
            return
        except Exception:  # noqa: BLE001 - try the next authority
            continue
    raise AssertionError("the SVID is not signed by any authority of the bundle")


def test_py_spiffe_fetches_an_x509_svid_that_chains_to_the_bundle(deployment, client):
    svid = client.fetch_x509_svid()
    assert str(svid.spiffe_id) == deployment.spiffe_id
    key_of_leaf = svid.leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    key_of_private = svid.private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert key_of_leaf == key_of_private, "the private key does not belong to the SVID"
    bundle = client.fetch_x509_bundles().get_bundle_for_trust_domain(TD)
    assert bundle is not None and bundle.x509_authorities
    assert_signed_by_bundle(svid.cert_chain[-1], bundle.x509_authorities)
    context = client.fetch_x509_context()
    assert str(context.default_svid.spiffe_id) == deployment.spiffe_id


def test_py_spiffe_fetches_and_validates_jwt_svids(deployment, client):
    svid = client.fetch_jwt_svid(audience={"spiffe://example.org/db"})
    assert str(svid.spiffe_id) == deployment.spiffe_id
    assert svid.audience == {"spiffe://example.org/db"}
    # Locally, against the JWT bundle the agent serves.
    jwt_bundle = client.fetch_jwt_bundles().get_bundle_for_trust_domain(TD)
    assert jwt_bundle is not None and jwt_bundle.jwt_authorities
    local = JwtSvid.parse_and_validate(svid.token, jwt_bundle, {"spiffe://example.org/db"})
    assert str(local.spiffe_id) == deployment.spiffe_id
    # Through the socket: the right audience passes, another is refused.
    checked = client.validate_jwt_svid(svid.token, "spiffe://example.org/db")
    assert str(checked.spiffe_id) == deployment.spiffe_id
    with pytest.raises(ValidateJwtSvidError):
        client.validate_jwt_svid(svid.token, "spiffe://example.org/other")


def test_py_spiffe_watch_sees_a_rotation(deployment, client):
    serials = []
    errors = []
    rotated = threading.Event()

    def on_success(context):
        serial = context.default_svid.leaf.serial_number
        if serial not in serials:
            serials.append(serial)
        if len(serials) >= 2:
            rotated.set()

    handle = client.stream_x509_contexts(on_success=on_success, on_error=errors.append)
    try:
        # x509SVIDTTL is 20 s: the agent rotates at half-life.
        assert rotated.wait(timeout=60), f"no rotation seen: serials {serials}, errors {errors}"
    finally:
        handle.cancel()
    assert not errors, errors


@pytest.mark.parametrize("target", ["unix:{}", "unix://{}"])
def test_grpcio_calls_the_server_admin_socket_with_its_default_authority(deployment, target):
    with grpc.insecure_channel(target.format(deployment.admin_socket)) as channel:
        health = channel.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=10)
        assert health == SERVING
        # spire.api.server.bundle.v1.Bundle/GetBundle with an empty request: the bundle's
        # trust domain is in the answer.
        bundle = channel.unary_unary("/spire.api.server.bundle.v1.Bundle/GetBundle")(b"", timeout=10)
        assert TRUST_DOMAIN.encode() in bundle


def test_grpcio_calls_the_agent_admin_socket(deployment):
    with grpc.insecure_channel("unix:" + deployment.agent_admin_socket) as channel:
        assert channel.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=10) == SERVING


def test_grpcio_on_the_workload_socket_without_the_security_header_is_refused(deployment):
    with grpc.insecure_channel("unix:" + deployment.workload_socket) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            channel.unary_unary("/SpiffeWorkloadAPI/FetchJWTBundles")(b"", timeout=10)
        # Refused by the Workload API's own check, not by the HTTP/2 layer.
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value
