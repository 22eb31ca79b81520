//! The host side of the capability imports: each call checks the plugin's grant, runs
//! its I/O outside the CPU budget, and maps failures to the WIT `plugin-error` cases.

use wasmtime::component::Resource;

use super::http::Request;
use super::{CapabilityError, KubernetesAccess, PodMatch, files, x509};
use crate::RedeemError;
use crate::bindings::node_server::sigil::plugin::{
    granted_files, http_client, join_tokens, kubernetes, x509 as wit_x509,
};
use crate::bindings::workload::sigil::plugin::pod_lookup;
use crate::bindings::workload::sigil::plugin::types::PluginError;
use crate::process::ProcessFacts;
use crate::state::CallState;

/// A capability call's outcome as the plugin sees it; the outer `Result` is for traps.
type Answer<T> = wasmtime::Result<Result<T, PluginError>>;

impl From<CapabilityError> for PluginError {
    fn from(error: CapabilityError) -> Self {
        match error {
            CapabilityError::Invalid(m) => PluginError::InvalidArgument(m),
            CapabilityError::Denied(m) => PluginError::PermissionDenied(m),
            CapabilityError::NotFound(m) => PluginError::NotFound(m),
            CapabilityError::Unavailable(m) => PluginError::Unavailable(m),
        }
    }
}

impl CallState {
    /// The path granted under `name`.
    fn granted_file(&self, name: &str) -> Result<std::path::PathBuf, PluginError> {
        self.grants.files.get(name).cloned().ok_or_else(|| {
            PluginError::NotFound(format!("no file is granted to this plugin as {name:?}"))
        })
    }
}

impl granted_files::Host for CallState {
    fn read(&mut self, name: String) -> Answer<Vec<u8>> {
        let path = match self.granted_file(&name) {
            Ok(path) => path,
            Err(error) => return Ok(Err(error)),
        };
        let max = self.max_read_bytes;
        Ok(self
            .io(|_| files::read(&path, max))
            .map_err(|e| PluginError::Unavailable(format!("granted file {name:?}: {e}"))))
    }

    fn sign(&mut self, name: String, message: Vec<u8>) -> Answer<Vec<u8>> {
        let path = match self.granted_file(&name) {
            Ok(path) => path,
            Err(error) => return Ok(Err(error)),
        };
        let max = self.max_read_bytes;
        Ok(self
            .io(|_| files::sign(&path, &message, max))
            .map_err(|e| PluginError::Unavailable(format!("granted key {name:?}: {e}"))))
    }
}

impl wit_x509::Host for CallState {
    fn verify_chain(
        &mut self,
        chain: Vec<Vec<u8>>,
        roots_pem: String,
    ) -> Answer<wit_x509::VerifiedChain> {
        let now = sigil_clock::unix_now();
        Ok(match x509::verify_chain(&chain, &roots_pem, now) {
            Ok((leaf, authorities)) => Ok(wit_x509::VerifiedChain {
                leaf: certificate(leaf),
                authorities: authorities.into_iter().map(certificate).collect(),
            }),
            Err(reason) => Err(PluginError::PermissionDenied(reason)),
        })
    }

    fn verify_signature(
        &mut self,
        certificate: Vec<u8>,
        message: Vec<u8>,
        signature: Vec<u8>,
    ) -> Answer<()> {
        Ok(x509::verify_signature(&certificate, &message, &signature)
            .map_err(PluginError::PermissionDenied))
    }
}

fn certificate(info: x509::CertificateInfo) -> wit_x509::Certificate {
    wit_x509::Certificate {
        subject_common_name: info.subject_common_name,
        serial_number: info.serial_number,
        sha1_fingerprint: info.sha1_fingerprint,
        sha256_fingerprint: info.sha256_fingerprint,
        dns_names: info.dns_names,
        uris: info.uris,
        not_after: info.not_after,
    }
}

impl join_tokens::Host for CallState {
    fn redeem(&mut self, token: String) -> Answer<()> {
        let Some(redeemer) = self.grants.join_tokens.clone() else {
            return Ok(Err(PluginError::PermissionDenied(
                "join tokens are not granted to this plugin".into(),
            )));
        };
        Ok(self.io(|_| redeemer.redeem(&token)).map_err(|e| match e {
            RedeemError::Refused(m) => PluginError::PermissionDenied(m),
            RedeemError::Unavailable(m) => PluginError::Unavailable(m),
        }))
    }
}

impl http_client::Host for CallState {
    fn fetch(&mut self, request: http_client::Request) -> Answer<http_client::Response> {
        let request = Request {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
        };
        let (timeout, max) = (self.io_timeout, self.max_read_bytes);
        let answer = self.io(|state| {
            state
                .http
                .fetch(&state.grants.http_allow, request, timeout, max)
        });
        Ok(answer
            .map(|response| http_client::Response {
                status: response.status,
                headers: response.headers,
                body: response.body,
            })
            .map_err(PluginError::from))
    }
}

impl kubernetes::Host for CallState {
    fn review_token(
        &mut self,
        cluster: String,
        token: String,
        audiences: Vec<String>,
    ) -> Answer<kubernetes::TokenReview> {
        let access = match self.cluster(&cluster) {
            Ok(access) => access,
            Err(error) => return Ok(Err(error)),
        };
        Ok(self
            .io(|_| access.review_token(&token, &audiences))
            .map(|review| kubernetes::TokenReview {
                authenticated: review.authenticated,
                error: review.error,
                username: review.username,
                uid: review.uid,
                groups: review.groups,
                audiences: review.audiences,
                extra: review.extra,
            })
            .map_err(PluginError::from))
    }

    fn pod(&mut self, cluster: String, namespace: String, name: String) -> Answer<String> {
        let access = match self.cluster(&cluster) {
            Ok(access) => access,
            Err(error) => return Ok(Err(error)),
        };
        Ok(self
            .io(|_| access.pod(&namespace, &name))
            .map_err(PluginError::from))
    }

    fn node(&mut self, cluster: String, name: String) -> Answer<String> {
        let access = match self.cluster(&cluster) {
            Ok(access) => access,
            Err(error) => return Ok(Err(error)),
        };
        Ok(self.io(|_| access.node(&name)).map_err(PluginError::from))
    }
}

impl CallState {
    /// The access granted for the Kubernetes cluster `name`.
    fn cluster(&self, name: &str) -> Result<KubernetesAccess, PluginError> {
        if self.grants.kubernetes.is_empty() {
            return Err(not_granted("kubernetes"));
        }
        self.grants.kubernetes.get(name).cloned().ok_or_else(|| {
            PluginError::NotFound(format!(
                "no Kubernetes cluster named {name:?} is granted to this plugin"
            ))
        })
    }
}

impl pod_lookup::Host for CallState {
    fn pod_of(
        &mut self,
        process: Resource<ProcessFacts>,
        container_required: bool,
    ) -> Answer<Option<pod_lookup::PodMatch>> {
        let Some(access) = self.grants.kubelet.clone() else {
            return Ok(Err(not_granted("pod-lookup")));
        };
        let (container_id, pod_uid) = match self.table.get(&process)?.placement() {
            Ok(placement) => (placement.container_id.clone(), placement.pod_uid.clone()),
            Err(conflict) => {
                return Ok(Err(PluginError::PermissionDenied(format!(
                    "the process's cgroups are ambiguous: {conflict}"
                ))));
            }
        };
        let Some(container_id) = container_id else {
            return Ok(Ok(None));
        };
        Ok(self
            .io(|_| access.pod_of(pod_uid.as_deref(), &container_id, container_required))
            .map(|found| {
                found.map(
                    |PodMatch {
                         pod,
                         container_status,
                     }| pod_lookup::PodMatch {
                        pod,
                        container_status,
                    },
                )
            })
            .map_err(PluginError::from))
    }
}

fn not_granted(capability: &str) -> PluginError {
    PluginError::PermissionDenied(format!("{capability} is not granted to this plugin"))
}
