//! Errors in configuration: each says what was wrong and what to do.
//! (A kubelet or API server that does not answer is not an error but a
//! state: see [`crate::State`].)

use std::path::PathBuf;

/// A configuration Algalon cannot use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A `--kubernetes-pod-label-allowlist-regex` pattern does not compile.
    #[error(
        "invalid --kubernetes-pod-label-allowlist-regex pattern {pattern:?}: {reason} \
         (patterns are regular expressions matched against pod label keys, e.g. \
         `^app\\.kubernetes\\.io/`)"
    )]
    LabelPattern {
        /// As given.
        pattern: String,
        /// The regex compiler's complaint.
        reason: String,
    },

    /// Pod labels need the API server, and Algalon is not running in a pod
    /// with a service account (or the variables are wrong).
    #[error(
        "--kubernetes-enable-pod-labels needs the API server's in-cluster address: {variable} is \
         {problem}; run Algalon in a pod (Kubernetes sets KUBERNETES_SERVICE_HOST and \
         KUBERNETES_SERVICE_PORT) with a service account allowed to get pods \
         (deploy/kubernetes/overlays/pod-labels)"
    )]
    InClusterEnv {
        /// The variable.
        variable: &'static str,
        /// "not set", "not a port number", …
        problem: String,
    },

    /// A service-account file cannot be read or used.
    #[error(
        "--kubernetes-enable-pod-labels: cannot use {}: {reason}; mount the pod's service \
         account token (automountServiceAccountToken: true)",
        path.display()
    )]
    ServiceAccount {
        /// The token or CA file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}
