//! [`Client`]: one HTTP/2 connection to the apiserver's gRPC API, shared by every [`Api`] made
//! from it.

use std::time::Duration;

use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope, Resource};
use niwa_api::proto::resources_client::ResourcesClient;
use tonic::transport::{Channel, Endpoint};

use crate::api::{Api, Object};
use crate::dynamic::DynamicApi;
use crate::error::{Error, Result};
use crate::raw::RawApi;

/// How long establishing a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 keep-alive pings: a dead apiserver is noticed within ~interval + timeout even on an
/// idle watch stream.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// A client of niwa's apiserver. Cheap to clone: clones share one HTTP/2 channel, which
/// reconnects by itself after the apiserver restarts.
#[derive(Clone)]
pub struct Client {
    grpc: ResourcesClient<Channel>,
    url: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("url", &self.url).finish()
    }
}

/// `127.0.0.1:6443` → `http://127.0.0.1:6443`; URLs with a scheme are kept.
fn normalize(url: &str) -> String {
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

fn endpoint(url: &str) -> Result<Endpoint> {
    let url = normalize(url);
    let endpoint = Endpoint::from_shared(url.clone()).map_err(|e| Error::InvalidUrl {
        url: url.clone(),
        reason: e.to_string(),
    })?;
    if !url.starts_with("http://") {
        return Err(Error::InvalidUrl {
            url,
            reason: "only http:// is supported (TLS is not implemented yet)".into(),
        });
    }
    Ok(endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true))
}

impl Client {
    /// Connects to the apiserver at `url` (`http://127.0.0.1:6443`; the scheme may be left out).
    /// Fails if it cannot be reached now; see [`Client::connect_lazy`] for daemons that start
    /// before the apiserver.
    pub async fn connect(url: &str) -> Result<Client> {
        let channel = endpoint(url)?.connect().await.map_err(|e| {
            Error::Transport(format!("cannot connect to {url}: {}", source_chain(&e)))
        })?;
        Ok(Client::from_channel(channel, url))
    }

    /// A client that connects on its first request (and reconnects whenever needed).
    pub fn connect_lazy(url: &str) -> Result<Client> {
        let channel = endpoint(url)?.connect_lazy();
        Ok(Client::from_channel(channel, url))
    }

    /// A client over an existing tonic channel.
    pub fn from_channel(channel: Channel, url: &str) -> Client {
        // Lists of 100k objects are large: the server sends any size, so the client reads any.
        let grpc = ResourcesClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        Client {
            grpc,
            url: normalize(url),
        }
    }

    /// The apiserver URL this client talks to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The generated gRPC client, for calls this crate does not wrap.
    pub fn grpc(&self) -> ResourcesClient<Channel> {
        self.grpc.clone()
    }

    /// Objects of a namespaced kind in one namespace.
    pub fn namespaced<K>(&self, namespace: &str) -> Api<K>
    where
        K: Object + Resource<Scope = NamespaceResourceScope>,
    {
        Api::new(self.raw::<K>(namespace))
    }

    /// Objects of a cluster-scoped kind (Node, Namespace, PersistentVolume, ...).
    pub fn cluster<K>(&self) -> Api<K>
    where
        K: Object + Resource<Scope = ClusterResourceScope>,
    {
        Api::new(self.raw::<K>(""))
    }

    /// Objects of any kind across all namespaces (for list and watch; writes to namespaced kinds
    /// take the namespace from the object).
    pub fn all<K: Object>(&self) -> Api<K> {
        Api::new(self.raw::<K>(""))
    }

    /// Untyped access to any resource by group, version and plural name; objects are
    /// `serde_json::Value`s. `namespace` is `None` for cluster-scoped resources and for all
    /// namespaces.
    pub fn dynamic(
        &self,
        group: &str,
        version: &str,
        resource: &str,
        namespace: Option<&str>,
    ) -> DynamicApi {
        DynamicApi::new(RawApi::new(
            self.grpc.clone(),
            group,
            version,
            resource,
            namespace.unwrap_or_default(),
        ))
    }

    /// Untyped access to a resource of the registry (what the CLI resolves user input to).
    pub fn dynamic_for(
        &self,
        info: &niwa_api::ResourceInfo,
        namespace: Option<&str>,
    ) -> DynamicApi {
        self.dynamic(info.group, info.version, info.plural, namespace)
    }

    fn raw<K: Resource>(&self, namespace: &str) -> RawApi {
        RawApi::new(
            self.grpc.clone(),
            K::GROUP,
            K::VERSION,
            K::URL_PATH_SEGMENT,
            namespace,
        )
    }
}

/// An error with its causes (`transport error: tcp connect error: Connection refused`).
fn source_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_without_a_scheme_are_http() {
        assert_eq!(normalize("127.0.0.1:6443"), "http://127.0.0.1:6443");
        assert_eq!(normalize("http://h:1"), "http://h:1");
        assert!(matches!(
            endpoint("https://127.0.0.1:6443"),
            Err(Error::InvalidUrl { .. })
        ));
        assert!(matches!(endpoint("http://"), Err(Error::InvalidUrl { .. })));
    }
}
