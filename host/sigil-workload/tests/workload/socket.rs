//! The socket file's life: directory, mode, stale file, removal, health.

use std::os::unix::fs::PermissionsExt;

use sigil_workload::WorkloadConfig;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::support::*;

#[tokio::test]
async fn the_socket_is_created_world_connectable_and_removed_on_shutdown() {
    let world = World::new();
    let socket = Socket::start(world.identities(), WorkloadConfig::default()).await;
    // The directory did not exist; serve created it.
    let mode = std::fs::metadata(&socket.path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o777, "mode {mode:o}");

    let mut health = HealthClient::new(socket.channel().await);
    let status = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);

    let path = socket.path.clone();
    socket.stop().await.unwrap();
    assert!(!path.exists(), "the socket file is removed on shutdown");
}

#[tokio::test]
async fn a_stale_socket_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.sock");
    // A socket file left behind by a process that died.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let world = World::new();
    let socket = Socket::start_at(dir, path, world.identities(), WorkloadConfig::default()).await;
    let mut health = HealthClient::new(socket.channel().await);
    health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    socket.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_ends_open_streams_instead_of_waiting_for_them() {
    use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
    use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
    use sigil_proto::workload::X509svidRequest;
    use tokio_stream::wrappers::ReceiverStream;

    let world = World::new();
    let socket = Socket::start(world.identities(), WorkloadConfig::default()).await;
    let mut workload = socket.workload_client().await;
    let mut svids = workload
        .fetch_x509svid(with_header(X509svidRequest {}))
        .await
        .unwrap()
        .into_inner();
    next(&mut svids).await.unwrap().unwrap();

    let mut sds = SecretDiscoveryServiceClient::new(socket.channel().await);
    let (requests, rx) = tokio::sync::mpsc::channel(1);
    requests.send(DiscoveryRequest::default()).await.unwrap();
    let mut secrets = sds
        .stream_secrets(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    next(&mut secrets).await.unwrap().unwrap();

    // Both streams are open (and the SDS client keeps its request side open too).
    tokio::time::timeout(WAIT, socket.stop())
        .await
        .expect("shutdown must not wait for open streams")
        .unwrap();
    let status = next(&mut svids).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    let status = next(&mut secrets).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    drop(requests);
}
