//! The kubelet's pod-resources v1 gRPC API over its unix socket: tonic's
//! HTTP/2 channel with a unix-socket connector, the client generated from
//! the vendored `api.proto`, and a deadline on every call.
//!
//! The channel connects lazily and reconnects by itself: a kubelet that
//! restarts (its socket removed and created again) is reached again on the
//! next call after it listens.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::pb::v1::pod_resources_lister_client::PodResourcesListerClient;
use crate::pb::v1::{
    AllocatableResourcesRequest, AllocatableResourcesResponse, GetPodResourcesRequest,
    GetPodResourcesResponse, ListPodResourcesRequest, ListPodResourcesResponse,
};

/// dcgm-exporter's and the kubelet's default socket.
pub const DEFAULT_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";

/// Largest answer accepted: a `List` for a node with thousands of pods is
/// a few MB (tonic's default limit is 4 MiB).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Why a call did not return an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The socket file does not exist: the kubelet is not running, is
    /// restarting, or the socket's directory is not mounted.
    #[error("{} does not exist (kubelet not running or restarting, or \
             /var/lib/kubelet/pod-resources not mounted into the container)", .0.display())]
    SocketMissing(PathBuf),
    /// The socket exists but Algalon may not connect to it.
    #[error("permission denied on {} (the socket is root-only: run the exporter as root or \
             with access to the kubelet's pod-resources directory)", .0.display())]
    PermissionDenied(PathBuf),
    /// The socket exists but nothing accepts connections on it.
    #[error("nothing listens on {} (kubelet stopped or restarting)", .0.display())]
    NotListening(PathBuf),
    /// No answer within the deadline.
    #[error("no answer within {:.1} s (kubelet overloaded or hung)", .0.as_secs_f64())]
    TimedOut(Duration),
    /// The kubelet does not serve this call (older Kubernetes, or a feature
    /// gate off).
    #[error("the kubelet does not implement {0}")]
    Unimplemented(&'static str),
    /// Any other failure, with the gRPC status or transport error.
    #[error("{0}")]
    Other(String),
}

/// A client of the kubelet's `PodResourcesLister` service.
#[derive(Debug, Clone)]
pub struct PodResourcesClient {
    socket: PathBuf,
    timeout: Duration,
    client: PodResourcesListerClient<Channel>,
}

impl PodResourcesClient {
    /// A client for the socket at `socket`; each call gives up after
    /// `timeout`. Connects on the first call, so it never fails here.
    /// Must be called inside a tokio runtime.
    pub fn new(socket: impl Into<PathBuf>, timeout: Duration) -> PodResourcesClient {
        let socket = socket.into();
        let path = socket.clone();
        // The URI only fills the :authority header (grpc-go sends
        // "localhost" for unix sockets too); the connector ignores it.
        let channel = Endpoint::from_static("http://localhost")
            .connect_timeout(timeout)
            .timeout(timeout)
            .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(&path).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            }));
        let client =
            PodResourcesListerClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES);
        PodResourcesClient {
            socket,
            timeout,
            client,
        }
    }

    /// The socket's path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Every pod on the node with the devices of each container.
    pub async fn list(&mut self) -> Result<ListPodResourcesResponse, CallError> {
        self.precheck()?;
        let request = self.request(ListPodResourcesRequest {});
        let mut client = self.client.clone();
        self.call("List", client.list(request)).await
    }

    /// Every device the kubelet can hand out (`GetAllocatableResources`,
    /// GA since Kubernetes 1.28).
    pub async fn allocatable(&mut self) -> Result<AllocatableResourcesResponse, CallError> {
        self.precheck()?;
        let request = self.request(AllocatableResourcesRequest {});
        let mut client = self.client.clone();
        self.call(
            "GetAllocatableResources",
            client.get_allocatable_resources(request),
        )
        .await
    }

    /// One pod's devices (`Get`, GA since Kubernetes 1.34).
    pub async fn get(
        &mut self,
        namespace: &str,
        name: &str,
    ) -> Result<GetPodResourcesResponse, CallError> {
        self.precheck()?;
        let request = self.request(GetPodResourcesRequest {
            pod_name: name.to_owned(),
            pod_namespace: namespace.to_owned(),
        });
        let mut client = self.client.clone();
        self.call("Get", client.get(request)).await
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        // Sent as grpc-timeout, so the kubelet stops working on it too.
        request.set_timeout(self.timeout);
        request
    }

    /// A missing socket is told apart from one nobody listens on before
    /// any connection attempt.
    fn precheck(&self) -> Result<(), CallError> {
        match std::fs::metadata(&self.socket) {
            Ok(_) => Ok(()),
            Err(e) => Err(self.io_error(&e)),
        }
    }

    async fn call<T>(
        &self,
        method: &'static str,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, CallError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Err(_) => Err(CallError::TimedOut(self.timeout)),
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(self.classify(method, &status)),
        }
    }

    fn io_error(&self, e: &std::io::Error) -> CallError {
        match e.kind() {
            std::io::ErrorKind::NotFound => CallError::SocketMissing(self.socket.clone()),
            std::io::ErrorKind::PermissionDenied => {
                CallError::PermissionDenied(self.socket.clone())
            }
            std::io::ErrorKind::ConnectionRefused => CallError::NotListening(self.socket.clone()),
            _ => CallError::Other(format!("{}: {e}", self.socket.display())),
        }
    }

    fn classify(&self, method: &'static str, status: &tonic::Status) -> CallError {
        // A connection failure is wrapped a few times over; its io::Error
        // says what really happened.
        let mut source: Option<&(dyn std::error::Error + 'static)> =
            std::error::Error::source(status);
        while let Some(e) = source {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                return self.io_error(io);
            }
            source = e.source();
        }
        match status.code() {
            tonic::Code::DeadlineExceeded => CallError::TimedOut(self.timeout),
            // tonic's own request timeout.
            tonic::Code::Cancelled if status.message().contains("Timeout") => {
                CallError::TimedOut(self.timeout)
            }
            tonic::Code::Unimplemented => CallError::Unimplemented(method),
            code => {
                let message = status.message();
                let text = if message.is_empty() {
                    format!("{method}: {code:?}")
                } else {
                    format!("{method}: {code:?}: {message}")
                };
                CallError::Other(text)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_told_apart() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let _guard = rt.enter();
        let client = PodResourcesClient::new("/run/k.sock", Duration::from_secs(1));
        let wrapped = |kind: std::io::ErrorKind| {
            tonic::Status::from_error(Box::new(std::io::Error::from(kind)))
        };
        let denied = client.classify("List", &wrapped(std::io::ErrorKind::PermissionDenied));
        assert_eq!(denied, CallError::PermissionDenied("/run/k.sock".into()));
        assert!(
            denied.to_string().contains("run the exporter as root"),
            "{denied}"
        );
        assert_eq!(
            client.classify("List", &wrapped(std::io::ErrorKind::ConnectionRefused)),
            CallError::NotListening("/run/k.sock".into())
        );
        assert_eq!(
            client.classify("List", &wrapped(std::io::ErrorKind::NotFound)),
            CallError::SocketMissing("/run/k.sock".into())
        );
        assert_eq!(
            client.classify("List", &tonic::Status::deadline_exceeded("late")),
            CallError::TimedOut(Duration::from_secs(1))
        );
        assert_eq!(
            client.classify("Get", &tonic::Status::unimplemented("")),
            CallError::Unimplemented("Get")
        );
        assert_eq!(
            client.classify("List", &tonic::Status::internal("boom")),
            CallError::Other("List: Internal: boom".into())
        );
    }
}
