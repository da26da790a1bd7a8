//! Algalon's pod-resources client and refresher against the kubelet
//! stand-in: the real v1 gRPC API on a unix socket, and an HTTPS API server
//! with pods and labels (testing/kubelet/standin.py, scenario
//! testing/kubelet/scenarios/node.json).

mod common;

use std::time::{Duration, Instant};

use algalon_kubernetes::apiserver::ApiError;
use algalon_kubernetes::refresher::MetadataState;
use algalon_kubernetes::{
    Attribution, CallError, GpuRef, Kubernetes, LabelFilter, LabelStyle, MappingOptions,
    MetadataOptions, MigRef, Options, PodResourcesClient, Serving, State,
};
use common::{StandIn, wait_for};

const GPU_MIG: &str = "GPU-8d2f4a6c-0e1b-4d3f-a5c7-9e1b3d5f7a80";
const GPU_A: &str = "GPU-4e6a8c0e-2a4c-46e8-b0d2-6a8c0e2a4c90";
const GPU_B: &str = "GPU-9a7c5e3b-1d2f-4e6a-8c0b-2d4f6a8c0e11";
const GPU_SHARED: &str = "GPU-d1e2f3a4-b5c6-4d7e-8f9a-0b1c2d3e4f22";
const MIG_3G: &str = "MIG-1a2b3c4d-5e6f-5a7b-8c9d-0e1f2a3b4c01";
const MIG_2G: &str = "MIG-2b3c4d5e-6f7a-5b8c-9d0e-1f2a3b4c5d02";

fn gpu(uuid: &str, minor: u32) -> GpuRef<'_> {
    GpuRef {
        uuid,
        minor_number: Some(minor),
    }
}

fn mig(uuid: &str, gi: u32) -> MigRef<'_> {
    MigRef {
        uuid: Some(uuid),
        gpu_instance_id: gi,
    }
}

fn who(holders: &[Attribution]) -> Vec<String> {
    holders
        .iter()
        .map(|a| {
            let mut s = format!("{}/{}/{}", a.pod.namespace, a.pod.name, a.container);
            if let Some(v) = &a.vgpu {
                s.push_str(&format!("#{v}"));
            }
            s
        })
        .collect()
}

/// Starts a refresher and waits for its first successful map.
async fn up(options: Options) -> (Kubernetes, std::sync::Arc<algalon_kubernetes::View>) {
    let k8s = Kubernetes::start(options, &tokio::runtime::Handle::current()).expect("start");
    let view = wait_for(&k8s, "the first map", |v| v.status.up()).await;
    (k8s, view)
}

/// The labels of a holder, for comparing with a literal list.
fn labels(a: &Attribution, style: LabelStyle) -> Vec<(String, String)> {
    a.labels(style)
        .into_iter()
        .map(|(k, v)| (k.into_owned(), v.to_owned()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Fast refreshes for tests.
fn options(standin: &StandIn, virtual_gpus: bool) -> Options {
    Options {
        socket: standin.socket.clone(),
        mapping: MappingOptions {
            virtual_gpus,
            ..MappingOptions::default()
        },
        interval: Duration::from_millis(100),
        call_timeout: Duration::from_secs(5),
        ..Options::new()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_calls_speak_the_kubelets_protocol() {
    if !common::standin_available() {
        return;
    }
    let mut standin = StandIn::start("node.json", "node", false);
    let mut client = PodResourcesClient::new(&standin.socket, Duration::from_secs(5));
    let list = client.list().await.expect("List");
    let names: Vec<&str> = list.pod_resources.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "trainer-a",
            "trainer-b",
            "notebook-3g",
            "notebook-2g",
            "infer-0",
            "infer-1",
            "infer-2",
            "web",
            "fpga-job"
        ]
    );
    let trainer = &list.pod_resources[0];
    assert_eq!(trainer.namespace, "ml");
    assert_eq!(trainer.containers[0].devices[0].device_ids, [GPU_A]);
    assert_eq!(trainer.containers[1].name, "log-shipper");

    let alloc = client.allocatable().await.expect("GetAllocatableResources");
    assert_eq!(alloc.devices.len(), 3);
    assert_eq!(alloc.devices[0].device_ids.len(), 6);

    let one = client.get("research", "notebook-2g").await.expect("Get");
    let pod = one.pod_resources.expect("a pod");
    assert_eq!(pod.containers[0].devices[0].device_ids, [MIG_2G]);
    match client.get("research", "no-such-pod").await {
        Err(CallError::Other(msg)) => assert!(msg.contains("NotFound"), "{msg}"),
        other => panic!("Get of an unknown pod: {other:?}"),
    }
    let stats = standin.stats();
    assert_eq!(stats["List"], 1);
    assert_eq!(stats["Get"], 2);
    assert_eq!(stats["GetAllocatableResources"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_mig_and_time_sliced_gpus() {
    if !common::standin_available() {
        return;
    }
    let standin = StandIn::start("node.json", "node", false);
    let runtime = tokio::runtime::Handle::current();
    let virt = Kubernetes::start(options(&standin, true), &runtime).expect("start");
    let plain = Kubernetes::start(options(&standin, false), &runtime).expect("start");
    let view = wait_for(&virt, "the first map", |v| v.status.up()).await;
    assert_eq!(view.status.pods, 9);
    let map = &view.map;
    assert_eq!(who(map.gpu_series(gpu(GPU_A, 1))), ["ml/trainer-a/main"]);
    assert_eq!(who(map.gpu_series(gpu(GPU_B, 2))), ["ml/trainer-b/main"]);
    assert_eq!(
        who(map.gpu_series(gpu(GPU_SHARED, 3))),
        [
            "serving/infer-0/server#0",
            "serving/infer-1/server#1",
            "serving/infer-2/server#2"
        ]
    );
    assert_eq!(
        who(map.mig_series(gpu(GPU_MIG, 0), mig(MIG_3G, 1))),
        ["research/notebook-3g/jupyter"]
    );
    assert_eq!(
        who(map.mig_series(gpu(GPU_MIG, 0), mig(MIG_2G, 5))),
        ["research/notebook-2g/jupyter"]
    );
    // MIG slices are held, not the GPU as a whole; an FPGA is no GPU.
    assert!(map.gpu_series(gpu(GPU_MIG, 0)).is_empty());
    assert!(
        map.gpu_series(gpu("GPU-not-an-nvidia-resource", 9))
            .is_empty()
    );
    assert_eq!(
        labels(
            &map.gpu_series(gpu(GPU_SHARED, 3))[1],
            LabelStyle::default()
        ),
        pairs(&[
            ("pod", "infer-1"),
            ("namespace", "serving"),
            ("container", "server"),
            ("vgpu", "1"),
        ])
    );

    // Without --kubernetes-virtual-gpus: one holder per series, no vgpu,
    // and a hint that the GPU is shared.
    let view = wait_for(&plain, "the first map", |v| v.status.up()).await;
    assert_eq!(
        who(view.map.gpu_series(gpu(GPU_SHARED, 3))),
        ["serving/infer-2/server"]
    );
    assert!(
        view.status
            .hints
            .iter()
            .any(|h| h.contains("--kubernetes-virtual-gpus")),
        "{:?}",
        view.status.hints
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_coming_and_going() {
    if !common::standin_available() {
        return;
    }
    let mut standin = StandIn::start("node.json", "node", false);
    let (k8s, _) = up(options(&standin, true)).await;
    standin.switch("churn");
    let view = wait_for(&k8s, "trainer-c on trainer-b's GPU", |v| {
        who(v.map.gpu_series(gpu(GPU_B, 2))) == ["ml/trainer-c/main"]
    })
    .await;
    assert_eq!(view.status.pods, 6);
    assert_eq!(
        who(view.map.gpu_series(gpu(GPU_SHARED, 3))),
        ["serving/infer-0/server#0", "serving/infer-2/server#2"]
    );
    assert!(
        view.map
            .mig_series(gpu(GPU_MIG, 0), mig(MIG_2G, 5))
            .is_empty()
    );
    standin.switch("empty");
    let view = wait_for(&k8s, "no pods", |v| v.status.pods == 0).await;
    assert_eq!(view.map.held_devices(), 0);
    assert!(view.status.up(), "an empty node is up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_restart_keeps_the_last_map_then_recovers() {
    if !common::standin_available() {
        return;
    }
    let mut standin = StandIn::start("node.json", "node", false);
    let (k8s, _) = up(options(&standin, true)).await;
    // The socket goes away: down at once, the last map kept (30 s).
    standin.switch("restarting");
    let view = wait_for(&k8s, "the socket missing", |v| {
        matches!(v.status.state, State::Down(CallError::SocketMissing(_)))
    })
    .await;
    assert_eq!(view.status.serving, Serving::Kept);
    assert_eq!(
        who(view.map.gpu_series(gpu(GPU_A, 1))),
        ["ml/trainer-a/main"]
    );
    assert!(!view.status.up());
    assert!(
        view.status
            .summary(Instant::now())
            .contains("pod labels kept"),
        "{}",
        view.status.summary(Instant::now())
    );
    // Crashed: the socket file is there, nobody listens.
    standin.switch("crashed");
    wait_for(&k8s, "nothing listening", |v| {
        matches!(v.status.state, State::Down(CallError::NotListening(_)))
    })
    .await;
    // A new kubelet on a new socket: the same channel reconnects.
    standin.switch("node");
    let view = wait_for(&k8s, "up again", |v| v.status.up()).await;
    assert_eq!(view.status.serving, Serving::Fresh);
    assert_eq!(view.status.pods, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_outage_drops_pod_labels() {
    if !common::standin_available() {
        return;
    }
    let mut standin = StandIn::start("node.json", "node", false);
    let (k8s, _) = up(Options {
        keep_last_good_for: Duration::from_millis(300),
        ..options(&standin, true)
    })
    .await;
    standin.switch("restarting");
    let view = wait_for(&k8s, "the map dropped", |v| {
        v.status.serving == Serving::Nothing
    })
    .await;
    assert!(view.map.gpu_series(gpu(GPU_A, 1)).is_empty());
    assert_eq!(view.status.pods, 0);
    assert!(
        matches!(view.status.state, State::Down(CallError::SocketMissing(_))),
        "{:?}",
        view.status.state
    );
    // A kubelet that answers with an error is down too.
    standin.switch("erroring");
    let view = wait_for(&k8s, "an UNAVAILABLE answer", |v| {
        matches!(&v.status.state, State::Down(CallError::Other(m)) if m.contains("Unavailable"))
    })
    .await;
    assert_eq!(view.status.serving, Serving::Nothing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_answers_within_and_past_the_deadline() {
    if !common::standin_available() {
        return;
    }
    let mut standin = StandIn::start("node.json", "slow", false);
    // 2 s answers, 5 s deadline: up, the List time says how slow.
    let patient = Kubernetes::start(options(&standin, true), &tokio::runtime::Handle::current())
        .expect("start");
    let view = wait_for(&patient, "a slow answer", |v| v.status.up()).await;
    assert!(
        view.status.last_list.expect("timed") >= Duration::from_millis(1900),
        "{:?}",
        view.status.last_list
    );
    // 0.5 s deadline: timed out, then up once the kubelet is quick again.
    let hasty = Kubernetes::start(
        Options {
            call_timeout: Duration::from_millis(500),
            ..options(&standin, true)
        },
        &tokio::runtime::Handle::current(),
    )
    .expect("start");
    wait_for(&hasty, "a timeout", |v| {
        matches!(v.status.state, State::Down(CallError::TimedOut(_)))
    })
    .await;
    standin.switch("node");
    wait_for(&hasty, "up after the kubelet speeds up", |v| v.status.up()).await;
}

fn metadata(standin: &StandIn) -> MetadataOptions {
    MetadataOptions::new(
        standin.in_cluster(),
        Some(LabelFilter::new(&["^app\\.kubernetes\\.io/", "^team$"]).expect("valid")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_labels_and_uids_from_the_api_server() {
    if !common::standin_available() {
        return;
    }
    let mut standin = StandIn::start("node.json", "node", true);
    let (k8s, view) = up(Options {
        metadata: Some(metadata(&standin)),
        ..options(&standin, true)
    })
    .await;
    assert_eq!(view.status.metadata, MetadataState::Up);
    let holder = &view.map.gpu_series(gpu(GPU_A, 1))[0];
    let style = LabelStyle {
        pod_uid: true,
        old_names: false,
    };
    assert_eq!(
        labels(holder, style),
        pairs(&[
            ("pod", "trainer-a"),
            ("namespace", "ml"),
            ("container", "main"),
            ("pod_uid", "0a6f2c1e-3b4d-4e5f-8a9b-0c1d2e3f4a01"),
            ("app_kubernetes_io_name", "trainer"),
            ("team", "vision"),
        ]),
        "pod-template-hash is not on the allowlist"
    );
    // The per-process join: a process's cgroup names its pod's UID.
    let p = view
        .map
        .process_holder(
            gpu(GPU_SHARED, 3),
            &[],
            "0a6f2c1e-3b4d-4e5f-8a9b-0c1d2e3f4a21",
        )
        .expect("infer-1 holds a replica of the shared GPU");
    assert_eq!(
        (p.pod.name.as_str(), p.vgpu.as_deref()),
        ("infer-1", Some("1"))
    );

    // Cached per pod: more refreshes, no more requests; a new pod is asked
    // about once.
    let after = view.status.refreshes + 5;
    k8s.refreshed(after).await;
    assert_eq!(standin.stats()["apiserver"], 9);
    standin.switch("churn");
    wait_for(&k8s, "trainer-c", |v| {
        who(v.map.gpu_series(gpu(GPU_B, 2))) == ["ml/trainer-c/main"]
    })
    .await;
    let view = k8s.view();
    k8s.refreshed(view.status.refreshes + 3).await;
    assert_eq!(standin.stats()["apiserver"], 10);
    let map = k8s.map();
    let c = &map.gpu_series(gpu(GPU_B, 2))[0];
    assert_eq!(
        c.pod.uid.as_deref(),
        Some("0a6f2c1e-3b4d-4e5f-8a9b-0c1d2e3f4a03")
    );
    assert!(c.pod.labels.contains(&("team".into(), "speech".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_refusals_leave_the_kubelet_map_intact() {
    if !common::standin_available() {
        return;
    }
    let standin = StandIn::start("node.json", "labels-forbidden", true);
    let (_k8s, view) = up(Options {
        metadata: Some(metadata(&standin)),
        ..options(&standin, true)
    })
    .await;
    match &view.status.metadata {
        MetadataState::Failing(ApiError::Forbidden(msg)) => {
            assert!(msg.contains("cannot get resource \"pods\""), "{msg}")
        }
        other => panic!("expected 403: {other:?}"),
    }
    let line = view.status.summary(Instant::now());
    assert!(line.contains("grant `get` on `pods`"), "{line}");
    let holder = &view.map.gpu_series(gpu(GPU_A, 1))[0];
    assert_eq!(holder.pod.name, "trainer-a");
    assert!(holder.pod.labels.is_empty() && holder.pod.uid.is_none());

    // A token the API server does not know: 401.
    let mut wrong = metadata(&standin);
    let token = standin.dir.path().join("wrong-token");
    std::fs::write(&token, "not-the-token\n").expect("write token");
    wrong.in_cluster.token_file = token;
    let (_k8s, view) = up(Options {
        metadata: Some(wrong),
        ..options(&standin, true)
    })
    .await;
    assert!(
        matches!(
            view.status.metadata,
            MetadataState::Failing(ApiError::Unauthorized(_))
        ),
        "{:?}",
        view.status.metadata
    );
}
