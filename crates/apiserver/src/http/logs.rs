//! `GET pods/{name}/log`: checks the pod and container as Kubernetes does, finds the kubelet of the
//! pod's node (its InternalIP and `daemonEndpoints.kubeletEndpoint.Port`), and streams the
//! kubelet's `Logs` (proto/niwa/kubelet/v1) back as plain text — `follow`, `tailLines`, `previous`,
//! `timestamps`, `sinceSeconds`/`sinceTime`, `limitBytes`, `container`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use niwa_api::proto::kubelet::LogsRequest;
use niwa_api::proto::kubelet::kubelet_client::KubeletClient;
use niwa_api::{ApiError, Reason};
use parking_lot::Mutex;
use serde_json::Value;
use tonic::transport::{Channel, Endpoint};

use super::resource::Ctx;
use super::respond;
use crate::rest::{self, Rest};

/// The kubelet port when a node does not say (Kubernetes' default).
pub const DEFAULT_KUBELET_PORT: i64 = 10250;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections to kubelets, one channel per kubelet address (channels multiplex streams).
pub struct LogProxy {
    rest: Rest,
    channels: Mutex<HashMap<String, Channel>>,
}

impl LogProxy {
    pub fn new(rest: Rest) -> LogProxy {
        LogProxy {
            rest,
            channels: Mutex::new(HashMap::new()),
        }
    }

    pub fn channel(&self, addr: &str) -> Result<Channel, ApiError> {
        if let Some(c) = self.channels.lock().get(addr) {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| ApiError::internal(format!("bad kubelet address {addr}: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT);
        let channel = endpoint.connect_lazy();
        self.channels
            .lock()
            .insert(addr.to_string(), channel.clone());
        Ok(channel)
    }

    /// `host:port` of the kubelet that runs on `node`.
    pub async fn kubelet_address(&self, node: &str) -> Result<String, ApiError> {
        let nodes = rest::resolve("", "v1", "nodes")?;
        let node_obj = self.rest.get(nodes, "", node).await?;
        let status = &node_obj["status"];
        let addresses = status["addresses"].as_array().cloned().unwrap_or_default();
        let ip = ["InternalIP", "Hostname", "ExternalIP"]
            .iter()
            .find_map(|ty| {
                addresses
                    .iter()
                    .find(|a| a["type"] == *ty)
                    .and_then(|a| a["address"].as_str())
            })
            .ok_or_else(|| {
                ApiError::bad_request(format!("node {node:?} has no address to reach its kubelet"))
            })?;
        let port = status["daemonEndpoints"]["kubeletEndpoint"]["Port"]
            .as_i64()
            .filter(|p| *p > 0)
            .unwrap_or(DEFAULT_KUBELET_PORT);
        Ok(if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        })
    }
}

fn names(containers: &Value) -> Vec<String> {
    containers
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The container a log request is about, with Kubernetes' errors.
pub fn pick_container(pod: &Value, requested: &str) -> Result<String, ApiError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let containers = names(&pod["spec"]["containers"]);
    let init = names(&pod["spec"]["initContainers"]);
    let ephemeral = names(&pod["spec"]["ephemeralContainers"]);
    if requested.is_empty() {
        if containers.len() == 1 {
            return Ok(containers[0].clone());
        }
        let mut msg = format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            containers.join(" ")
        );
        if !init.is_empty() {
            msg.push_str(&format!(
                " or one of the init containers: [{}]",
                init.join(" ")
            ));
        }
        if !ephemeral.is_empty() {
            msg.push_str(&format!(
                " or one of the ephemeral containers: [{}]",
                ephemeral.join(" ")
            ));
        }
        return Err(ApiError::bad_request(msg));
    }
    if containers
        .iter()
        .chain(&init)
        .chain(&ephemeral)
        .any(|c| c == requested)
    {
        Ok(requested.to_string())
    } else {
        Err(ApiError::bad_request(format!(
            "container {requested} is not valid for pod {name}"
        )))
    }
}

pub async fn logs(ctx: &Ctx) -> Result<Response, ApiError> {
    let (ns, name) = (&ctx.path.namespace, &ctx.path.name);
    let pod = ctx.api.rest().get(ctx.info, ns, name).await?;
    let container = pick_container(&pod, &ctx.params.container)?;
    let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
    if node.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let proxy = ctx.api.logs();
    let addr = proxy.kubelet_address(node).await?;
    let mut client = KubeletClient::new(proxy.channel(&addr)?);
    let p = &ctx.params;
    let req = LogsRequest {
        namespace: ns.clone(),
        pod: name.clone(),
        container,
        follow: p.follow,
        tail_lines: p.tail_lines,
        previous: p.previous,
        timestamps: p.timestamps,
        since_seconds: p.since_seconds,
        since_time: p.since_time.clone(),
        limit_bytes: p.limit_bytes,
        stream: String::new(),
        node_name: node.to_string(),
    };
    let mut stream = client
        .logs(req)
        .await
        .map_err(|s| kubelet_error(&s, node))?
        .into_inner();
    // The first message decides between an error status and a 200 stream.
    let first = stream
        .message()
        .await
        .map_err(|s| kubelet_error(&s, node))?;
    let Some(first) = first else {
        return Ok(respond::bytes(StatusCode::OK, "text/plain", Body::empty()));
    };
    let rest = futures::stream::unfold(stream, |mut s| async move {
        match s.message().await {
            Ok(Some(chunk)) => Some((Ok::<Bytes, Infallible>(Bytes::from(chunk.data)), s)),
            _ => None,
        }
    });
    let body = futures::StreamExt::chain(
        futures::stream::once(async move { Ok::<Bytes, Infallible>(Bytes::from(first.data)) }),
        rest,
    );
    Ok(respond::bytes(
        StatusCode::OK,
        "text/plain",
        Body::from_stream(body),
    ))
}

/// A kubelet error: its Kubernetes Status when it sent one, else a 500 naming the node.
fn kubelet_error(status: &tonic::Status, node: &str) -> ApiError {
    let err = ApiError::from_grpc(status);
    if matches!(
        err.reason,
        Reason::InternalError | Reason::ServiceUnavailable
    ) && status.code() == tonic::Code::Unavailable
    {
        return ApiError::internal(format!(
            "error dialing backend: the kubelet of node {node:?} is unreachable: {}",
            status.message()
        ));
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn container_choice_matches_kubernetes() {
        let pod = json!({"metadata": {"name": "web"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "i"}]}});
        assert_eq!(
            pick_container(&pod, "").err().map(|e| e.message),
            Some(
                "a container name must be specified for pod web, choose one of: [a b] or one of the init containers: [i]"
                    .to_string()
            )
        );
        assert_eq!(pick_container(&pod, "i").ok().as_deref(), Some("i"));
        assert_eq!(
            pick_container(&pod, "z").err().map(|e| e.message),
            Some("container z is not valid for pod web".to_string())
        );
        let single = json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "only"}]}});
        assert_eq!(pick_container(&single, "").ok().as_deref(), Some("only"));
    }
}
