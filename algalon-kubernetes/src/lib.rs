//! Which Kubernetes pod and container hold each GPU, for Algalon's
//! `--kubernetes` (dcgm-exporter's `pod`, `namespace`, `container`,
//! `pod_uid` and `vgpu` labels).
//!
//! * [`podresources`]: a client of the kubelet's pod-resources v1 gRPC API
//!   ([`pb::v1`], generated from the vendored `proto/podresources/v1/api.proto`
//!   of `k8s.io/kubelet`) over its unix socket, on tonic.
//! * [`mapping`]: dcgm-exporter's device-id rules (GPU UUIDs, `nvidiaN`,
//!   MIG devices, time-sliced replicas) turning a `List` answer into a
//!   [`PodMap`], and the lookups an encoder joins GPU and MIG series with.
//! * [`apiserver`], [`labels`], [`podlogs`]: pod UIDs and labels, from the API
//!   server with the pod's service account, or UIDs from `/var/log/pods`.
//! * [`refresher`]: all of it in the background, every interval, published
//!   behind an atomic pointer; the kubelet is never on the scrape path.
//!
//! The crate has no NVML and no HTTP server: the exporter starts a
//! [`Kubernetes`] on its runtime and its encoder reads [`Kubernetes::map`].
//!
//! ```no_run
//! use algalon_kubernetes::{GpuRef, Kubernetes, LabelStyle, Options};
//!
//! let runtime = tokio::runtime::Runtime::new()?;
//! let k8s = Kubernetes::start(Options::new(), runtime.handle())?;
//! runtime.block_on(k8s.refreshed(1));
//! let map = k8s.map();
//! let gpu = GpuRef { uuid: "GPU-5e4b2a3c-9d1f-4c7e-8a6b-1f2e3d4c5b60", minor_number: Some(0) };
//! for holder in map.gpu_series(gpu) {
//!     println!("{:?}", holder.labels(LabelStyle::default()));
//! }
//! println!("{}", k8s.view().status.summary(std::time::Instant::now()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod apiserver;
mod error;
pub mod labels;
pub mod mapping;
pub mod podlogs;
pub mod podresources;
pub mod refresher;

/// Code generated from the vendored `api.proto` (see `tests/codegen.rs`).
pub mod pb {
    /// The kubelet's `v1` pod-resources API: messages and the
    /// `PodResourcesLister` client.
    #[allow(missing_docs, clippy::all, clippy::pedantic, rust_2018_idioms)]
    #[path = "v1.rs"]
    pub mod v1;
}

pub use error::Error;
pub use labels::{LabelFilter, sanitize_label_name};
pub use mapping::{
    Attribution, GpuIdType, GpuRef, LabelStyle, MappingOptions, MigRef, Pod, PodMap,
};
pub use podresources::{CallError, PodResourcesClient};
pub use refresher::{Kubernetes, MetadataOptions, Options, Serving, State, Status, View};
