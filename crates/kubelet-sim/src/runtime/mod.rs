//! Runtimes carry out the state machine's actions. Each call returns at once: a runtime either
//! answers with [`Scheduled`] events (the sim runtime: "this container is running 50 ms from
//! now"), which the driver keeps on its own timer, or does the work in a task and reports through
//! the [`EventSink`] (the process runtime).

pub mod process;
pub mod sim;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::mpsc;

use niwa_api::proto::kubelet::{ExecInput, ExecOutput, ExecStart};

use crate::config::{NodeIdentity, RuntimeKind};
use crate::logs::{LogError, LogRequest, LogStream};
use crate::pod::{Event, ProbeKind, Running, Signal, Terminated};

/// An event due `after` from now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scheduled {
    pub after: Duration,
    pub event: Event,
}

impl Scheduled {
    pub fn now(event: Event) -> Scheduled {
        Scheduled {
            after: Duration::ZERO,
            event,
        }
    }
}

/// A runtime's report about one pod.
#[derive(Clone, Debug)]
pub struct RuntimeEvent {
    pub uid: String,
    pub event: Event,
}

/// Where asynchronous runtimes send their reports (bounded: a runtime task waits when the driver
/// is behind; capacity [`EVENT_QUEUE`]).
#[derive(Clone, Debug)]
pub struct EventSink {
    tx: mpsc::Sender<RuntimeEvent>,
}

/// Capacity of the runtime → driver queue.
pub const EVENT_QUEUE: usize = 4096;

impl EventSink {
    pub fn channel() -> (EventSink, mpsc::Receiver<RuntimeEvent>) {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        (EventSink { tx }, rx)
    }

    pub async fn send(&self, uid: &str, event: Event) {
        // The driver only goes away on shutdown; a lost report then does not matter.
        let _ = self
            .tx
            .send(RuntimeEvent {
                uid: uid.to_string(),
                event,
            })
            .await;
    }
}

/// The pod a runtime call is about.
#[derive(Clone, Debug)]
pub struct PodHandle {
    pub uid: String,
    pub pod: Arc<Pod>,
    pub node: Arc<NodeIdentity>,
}

impl PodHandle {
    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }

    pub fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or("")
    }
}

/// What a runtime still has of a pod after the kubelet restarted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adopted {
    pub pod_ip: Option<Ipv4Addr>,
    pub running: Vec<(String, Running)>,
    /// Instances that ended while the kubelet was away.
    pub exited: Vec<(String, Terminated)>,
}

/// Resource pressure a runtime can observe on its node (node conditions).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pressure {
    pub memory: bool,
    pub disk: bool,
    pub pid: bool,
}

/// A container runtime.
pub trait Runtime: Send + Sync + 'static {
    fn kind(&self) -> RuntimeKind;

    /// Set up the pod's sandbox with address `ip`; answers `SandboxReady` or `SandboxFailed`.
    fn create_sandbox(&self, pod: &PodHandle, ip: Ipv4Addr, sink: &EventSink) -> Vec<Scheduled>;

    /// Start a new instance of a container; answers `Started` (then `Exited` when it ends) or
    /// `StartFailed`.
    fn start_container(&self, pod: &PodHandle, container: &str, sink: &EventSink)
    -> Vec<Scheduled>;

    /// Probe a running instance; answers `Probed`.
    fn probe(
        &self,
        pod: &PodHandle,
        container: &str,
        container_id: &str,
        kind: ProbeKind,
        sink: &EventSink,
    ) -> Vec<Scheduled>;

    /// Run the preStop hook for at most `timeout`; answers `PreStopDone`.
    fn pre_stop(
        &self,
        pod: &PodHandle,
        container: &str,
        container_id: &str,
        timeout: Duration,
        sink: &EventSink,
    ) -> Vec<Scheduled>;

    /// Signal an instance; its end is answered by `Exited`.
    fn signal(
        &self,
        pod: &PodHandle,
        container: &str,
        container_id: &str,
        signal: Signal,
        sink: &EventSink,
    ) -> Vec<Scheduled>;

    /// Tear the sandbox down; answers `SandboxKilled`.
    fn kill_sandbox(&self, pod: &PodHandle, sink: &EventSink) -> Vec<Scheduled>;

    /// After a kubelet restart: what of this pod still runs (instances still running report their
    /// end on `sink` later).
    fn adopt(&self, pod: &PodHandle, sink: &EventSink) -> Option<Adopted>;

    /// The pod is gone for good: drop what is kept about it (logs, directories).
    fn forget(&self, uid: &str);

    /// A container's log.
    fn logs(&self, pod: &PodHandle, request: &LogRequest) -> Result<LogStream, LogError>;

    /// Pressure on the node, for its conditions.
    fn pressure(&self) -> Pressure {
        Pressure::default()
    }

    /// Runs a command in a running container (`kubectl exec`), streaming its output.
    fn exec(
        &self,
        pod: &PodHandle,
        container: &str,
        start: ExecStart,
        input: tonic::Streaming<ExecInput>,
    ) -> Result<ExecStream, tonic::Status> {
        let _ = (pod, container, start, input);
        Err(tonic::Status::unimplemented(format!(
            "exec is not supported by the {} runtime",
            self.kind().as_str()
        )))
    }

    /// Attaches to a running container's main process (`kubectl attach`): its output as it is
    /// written, and its stdin when it has one. `start.tty` and `start.stdin` already follow the
    /// container's spec.
    fn attach(
        &self,
        pod: &PodHandle,
        container: &str,
        start: ExecStart,
        input: tonic::Streaming<ExecInput>,
    ) -> Result<ExecStream, tonic::Status> {
        let _ = (pod, container, start, input);
        // A clear error rather than a fake session: the simulated container has no process
        // whose output an echo could stand for.
        Err(niwa_api::ApiError::bad_request(format!(
            "attach is not supported by the {} runtime: its containers are simulated and have no process to attach to (use --runtime process)",
            self.kind().as_str()
        ))
        .to_grpc())
    }
}

/// The output of an exec session.
pub type ExecStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<ExecOutput, tonic::Status>> + Send>>;
