//! Starts a niwa-store and a niwa-apiserver in-process on free loopback ports, and a gRPC client.
#![allow(dead_code)]

use std::net::SocketAddr;

use niwa_api::ApiError;
use niwa_api::proto::resources_client::ResourcesClient;
use niwa_api::proto::{
    CreateRequest, DeleteRequest, GetRequest, ListRequest, PatchRequest, ResourceRef,
    UpdateRequest, WatchRequest,
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

pub struct Cluster {
    pub store: SocketAddr,
    pub api: SocketAddr,
    pub client: ResourcesClient<Channel>,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    l.local_addr().expect("local addr")
}

impl Cluster {
    pub async fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let shutdown = CancellationToken::new();
        let store = free_addr();
        let config = niwa_store::StoreConfig::new(store, dir.path().join("store"));
        let token = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = niwa_store::run(config, token).await {
                eprintln!("store failed: {e}");
            }
        });
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let config = niwa_apiserver::ApiServerConfig::new(
            "127.0.0.1:0".parse().expect("addr"),
            vec![store.to_string()],
        );
        let token = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = niwa_apiserver::run(config, token, Some(ready_tx)).await {
                eprintln!("apiserver failed: {e}");
            }
        });
        let api = ready_rx.await.expect("apiserver ready");
        let client = ResourcesClient::connect(format!("http://{api}"))
            .await
            .expect("connect");
        Cluster {
            store,
            api,
            client,
            shutdown,
            _dir: dir,
        }
    }

    pub fn client(&self) -> ResourcesClient<Channel> {
        self.client.clone()
    }

    /// Another apiserver on the same store (as after a restart, or in an HA pair); stopped with
    /// the cluster or by cancelling the returned token.
    pub async fn another_apiserver(&self) -> (ResourcesClient<Channel>, CancellationToken) {
        let token = self.shutdown.child_token();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let config = niwa_apiserver::ApiServerConfig::new(
            "127.0.0.1:0".parse().expect("addr"),
            vec![self.store.to_string()],
        );
        let t = token.clone();
        tokio::spawn(async move {
            if let Err(e) = niwa_apiserver::run(config, t, Some(ready_tx)).await {
                eprintln!("apiserver failed: {e}");
            }
        });
        let api = ready_rx.await.expect("apiserver ready");
        let client = ResourcesClient::connect(format!("http://{api}"))
            .await
            .expect("connect");
        (client, token)
    }
}

/// `pods`, `configmaps`, `deployments.apps` → a ResourceRef.
pub fn rref(resource: &str, namespace: &str, name: &str) -> ResourceRef {
    let info = niwa_api::Registry
        .resolve(resource)
        .unwrap_or_else(|| panic!("unknown resource {resource}"));
    ResourceRef {
        group: info.group.into(),
        version: info.version.into(),
        resource: info.plural.into(),
        namespace: namespace.into(),
        name: name.into(),
        subresource: String::new(),
    }
}

pub fn sub(mut r: ResourceRef, subresource: &str) -> ResourceRef {
    r.subresource = subresource.into();
    r
}

fn obj(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("JSON object")
}

pub type ApiResult = Result<Value, ApiError>;

pub async fn create(c: &mut ResourcesClient<Channel>, r: ResourceRef, body: Value) -> ApiResult {
    c.create(CreateRequest {
        r#ref: Some(r),
        object: serde_json::to_vec(&body).expect("json"),
        ..Default::default()
    })
    .await
    .map(|resp| obj(&resp.into_inner().object))
    .map_err(|s| ApiError::from_grpc(&s))
}

pub async fn get(c: &mut ResourcesClient<Channel>, r: ResourceRef) -> ApiResult {
    c.get(GetRequest {
        r#ref: Some(r),
        ..Default::default()
    })
    .await
    .map(|resp| obj(&resp.into_inner().object))
    .map_err(|s| ApiError::from_grpc(&s))
}

pub async fn list(c: &mut ResourcesClient<Channel>, req: ListRequest) -> ApiResult {
    c.list(req)
        .await
        .map(|resp| obj(&resp.into_inner().object))
        .map_err(|s| ApiError::from_grpc(&s))
}

pub async fn update(c: &mut ResourcesClient<Channel>, r: ResourceRef, body: Value) -> ApiResult {
    c.update(UpdateRequest {
        r#ref: Some(r),
        object: serde_json::to_vec(&body).expect("json"),
        ..Default::default()
    })
    .await
    .map(|resp| obj(&resp.into_inner().object))
    .map_err(|s| ApiError::from_grpc(&s))
}

pub async fn patch(
    c: &mut ResourcesClient<Channel>,
    r: ResourceRef,
    patch_type: &str,
    body: Value,
) -> ApiResult {
    c.patch(PatchRequest {
        r#ref: Some(r),
        patch_type: patch_type.into(),
        patch: serde_json::to_vec(&body).expect("json"),
        ..Default::default()
    })
    .await
    .map(|resp| obj(&resp.into_inner().object))
    .map_err(|s| ApiError::from_grpc(&s))
}

pub async fn delete(c: &mut ResourcesClient<Channel>, r: ResourceRef, options: Value) -> ApiResult {
    c.delete(DeleteRequest {
        r#ref: Some(r),
        options: if options.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&options).expect("json")
        },
    })
    .await
    .map(|resp| obj(&resp.into_inner().object))
    .map_err(|s| ApiError::from_grpc(&s))
}

/// Opens a watch and returns a receiver of (type, object).
pub async fn watch(
    c: &mut ResourcesClient<Channel>,
    req: WatchRequest,
) -> tokio::sync::mpsc::Receiver<(String, Value)> {
    let mut stream = c.watch(req).await.expect("watch").into_inner();
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(async move {
        while let Ok(Some(ev)) = stream.message().await {
            if tx.send((ev.r#type, obj(&ev.object))).await.is_err() {
                break;
            }
        }
    });
    rx
}

/// Next watch event within 10 s.
pub async fn next(rx: &mut tokio::sync::mpsc::Receiver<(String, Value)>) -> (String, Value) {
    tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("watch event within 10 s")
        .expect("watch stream open")
}

pub fn rv(obj: &Value) -> String {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A patch with a field manager (and `force`, for applies).
pub async fn patch_as(
    c: &mut ResourcesClient<Channel>,
    r: ResourceRef,
    patch_type: &str,
    body: Value,
    manager: &str,
    force: bool,
) -> ApiResult {
    c.patch(PatchRequest {
        r#ref: Some(r),
        patch_type: patch_type.into(),
        patch: serde_json::to_vec(&body).expect("json"),
        field_manager: manager.into(),
        force,
        ..Default::default()
    })
    .await
    .map(|resp| obj(&resp.into_inner().object))
    .map_err(|s| ApiError::from_grpc(&s))
}
