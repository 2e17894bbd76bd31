//! The kubelet gRPC API (proto/niwa/kubelet/v1): what the apiserver proxies `kubectl logs`,
//! `kubectl exec`, `kubectl attach` and `kubectl port-forward` to. Errors carry a Kubernetes `Status` with the kubelet's wording.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ContainerStatus, PodStatus};
use niwa_api::proto::kubelet::kubelet_server::Kubelet;
use niwa_api::proto::kubelet::{ExecInput, ExecStart, LogChunk, LogsRequest, PortForwardInput};
use niwa_api::{ApiError, Reason};
use tonic::{Request, Response, Status, Streaming};

use crate::driver::{IndexedPod, PodIndex};
use crate::logs::{LogError, LogRequest, StreamKind};
use crate::runtime::Runtime;
use crate::time::Timestamp;

pub struct KubeletService {
    pub index: Arc<PodIndex>,
    pub runtime: Arc<dyn Runtime>,
}

impl std::fmt::Debug for KubeletService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletService").finish_non_exhaustive()
    }
}

fn bad_request(message: String) -> Status {
    ApiError::bad_request(message).to_grpc()
}

fn not_found(namespace: &str, name: &str) -> Status {
    let _ = namespace;
    ApiError::new(Reason::NotFound, format!("pods \"{name}\" not found")).to_grpc()
}

impl From<LogError> for Status {
    fn from(e: LogError) -> Status {
        match e {
            LogError::NoPod { namespace, pod } => not_found(&namespace, &pod),
            LogError::Io(m) => ApiError::internal(m).to_grpc(),
            other => bad_request(other.to_string()),
        }
    }
}

/// The pod's container statuses, init containers included.
fn statuses(status: &PodStatus) -> impl Iterator<Item = &ContainerStatus> {
    status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
}

/// Which container a request means: the named one, or the only one. Kubernetes' messages.
pub fn resolve_container(pod: &IndexedPod, container: &str) -> Result<String, Status> {
    let name = pod.handle.name();
    let spec = pod.handle.pod.spec.clone().unwrap_or_default();
    let app: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    let init: Vec<&str> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    if container.is_empty() {
        if app.len() == 1 {
            return Ok(app[0].to_string());
        }
        let mut message = format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            app.join(" ")
        );
        if !init.is_empty() {
            message.push_str(&format!(
                " or one of the init containers: [{}]",
                init.join(" ")
            ));
        }
        return Err(bad_request(message));
    }
    if app.contains(&container) || init.contains(&container) {
        return Ok(container.to_string());
    }
    Err(bad_request(format!(
        "container {container} is not valid for pod {name}"
    )))
}

/// Checks that the requested instance exists, with the kubelet's errors otherwise.
fn check_instance(pod: &IndexedPod, container: &str, previous: bool) -> Result<(), LogError> {
    let name = pod.handle.name().to_string();
    let status = statuses(&pod.status).find(|s| s.name == container);
    let state = status.and_then(|s| s.state.clone()).unwrap_or_default();
    if previous {
        let has_previous = status.is_some_and(|s| {
            s.restart_count > 0
                || s.last_state
                    .as_ref()
                    .is_some_and(|l| l.terminated.is_some())
        });
        if !has_previous {
            return Err(LogError::NoPrevious {
                container: container.to_string(),
                pod: name,
            });
        }
        return Ok(());
    }
    if let Some(w) = &state.waiting {
        let started_before = status.is_some_and(|s| {
            s.last_state
                .as_ref()
                .is_some_and(|l| l.terminated.is_some())
        });
        if !started_before {
            return Err(LogError::Waiting {
                container: container.to_string(),
                pod: name,
                reason: w
                    .reason
                    .clone()
                    .unwrap_or_else(|| "ContainerCreating".into()),
            });
        }
    }
    Ok(())
}

type LogsStream = Pin<Box<dyn Stream<Item = Result<LogChunk, Status>> + Send>>;
type ExecStream = crate::runtime::ExecStream;

impl KubeletService {
    fn find(&self, namespace: &str, name: &str) -> Result<IndexedPod, Status> {
        self.index
            .get(namespace, name)
            .ok_or_else(|| not_found(namespace, name))
    }

    /// The pod and container an exec or attach is for; the container must be running.
    fn running(&self, start: &ExecStart) -> Result<(IndexedPod, String), Status> {
        let pod = self.find(&start.namespace, &start.pod)?;
        let container = if start.container.is_empty() {
            pod.handle
                .pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .map(|c| c.name.clone())
                .unwrap_or_default()
        } else {
            resolve_container(&pod, &start.container)?
        };
        let running = statuses(&pod.status)
            .find(|s| s.name == container)
            .is_some_and(|s| s.state.as_ref().is_some_and(|st| st.running.is_some()));
        if !running {
            return Err(bad_request(format!(
                "unable to upgrade connection: container not found (\"{container}\")"
            )));
        }
        Ok((pod, container))
    }
}

/// The `start` message that opens an exec or attach call.
async fn first_start(input: &mut Streaming<ExecInput>, what: &str) -> Result<ExecStart, Status> {
    match input.next().await {
        Some(Ok(ExecInput {
            input: Some(niwa_api::proto::kubelet::exec_input::Input::Start(start)),
        })) => Ok(start),
        Some(Err(e)) => Err(e),
        _ => Err(bad_request(format!(
            "the first {what} message must be `start`"
        ))),
    }
}

#[tonic::async_trait]
impl Kubelet for KubeletService {
    type LogsStream = LogsStream;
    type ExecStream = ExecStream;
    type AttachStream = ExecStream;
    type PortForwardStream = super::portforward::PortForwardStream;

    async fn logs(&self, request: Request<LogsRequest>) -> Result<Response<LogsStream>, Status> {
        let r = request.into_inner();
        let pod = self.find(&r.namespace, &r.pod)?;
        let container = resolve_container(&pod, &r.container)?;
        check_instance(&pod, &container, r.previous)?;
        let since = match (r.since_seconds, r.since_time.as_str()) {
            (Some(s), _) if s > 0 => Timestamp::now()
                .checked_sub(jiff::SignedDuration::from_secs(s))
                .ok(),
            (_, "") => None,
            (_, t) => Some(
                t.parse::<Timestamp>()
                    .map_err(|e| bad_request(format!("sinceTime {t:?}: {e}")))?,
            ),
        };
        let stream = match r.stream.as_str() {
            "" | "All" => None,
            "Stdout" => Some(StreamKind::Stdout),
            "Stderr" => Some(StreamKind::Stderr),
            other => {
                return Err(bad_request(format!(
                    "invalid stream {other:?}: must be All, Stdout or Stderr"
                )));
            }
        };
        let request = LogRequest {
            container,
            follow: r.follow,
            previous: r.previous,
            timestamps: r.timestamps,
            tail_lines: r.tail_lines,
            since,
            limit_bytes: r.limit_bytes.filter(|l| *l > 0),
            stream,
        };
        let logs = self.runtime.logs(&pod.handle, &request)?;
        let out = logs.map(|chunk| {
            chunk
                .map(|data| LogChunk {
                    data: data.to_vec(),
                })
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(out)))
    }

    async fn exec(
        &self,
        request: Request<Streaming<ExecInput>>,
    ) -> Result<Response<ExecStream>, Status> {
        let mut input = request.into_inner();
        let start = first_start(&mut input, "exec").await?;
        let (pod, container) = self.running(&start)?;
        if start.command.is_empty() {
            return Err(bad_request(
                "you must specify at least one command for the container".into(),
            ));
        }
        let output = self.runtime.exec(&pod.handle, &container, start, input)?;
        Ok(Response::new(output))
    }

    async fn attach(
        &self,
        request: Request<Streaming<ExecInput>>,
    ) -> Result<Response<ExecStream>, Status> {
        let mut input = request.into_inner();
        let mut start = first_start(&mut input, "attach").await?;
        let (pod, container) = self.running(&start)?;
        // As the kubelet: whether the process runs on a terminal was decided when it started,
        // and only a container with `stdin: true` has a stdin to attach to.
        let spec = pod
            .handle
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == container));
        start.tty = spec.is_some_and(|c| c.tty == Some(true));
        start.stdin &= spec.is_some_and(|c| c.stdin == Some(true));
        if start.tty {
            start.stderr = false;
        }
        let output = self.runtime.attach(&pod.handle, &container, start, input)?;
        Ok(Response::new(output))
    }

    async fn port_forward(
        &self,
        request: Request<Streaming<PortForwardInput>>,
    ) -> Result<Response<Self::PortForwardStream>, Status> {
        let mut input = request.into_inner();
        let start = super::portforward::start(&mut input).await?;
        let pod = self.find(&start.namespace, &start.pod)?;
        let output = super::portforward::forward(&pod, &start, input).await?;
        Ok(Response::new(output))
    }
}
