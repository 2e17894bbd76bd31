//! The event recorder against a real apiserver: repeats become one Event with a count.

use niwa_client::k8s::api::core::v1::{ConfigMap, Event, Node};
use niwa_client::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use niwa_client::{Api, DeleteParams, EventType, ListParams, Recorder, ResourceExt};
use niwa_testkit::ControlPlane;

#[tokio::test]
async fn repeats_are_aggregated_into_one_event() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let cms: Api<ConfigMap> = client.namespaced("default");
    let cm = cms
        .create(&ConfigMap {
            metadata: ObjectMeta {
                name: Some("web".into()),
                ..Default::default()
            },
            ..Default::default()
        })
        .await?;
    let recorder = Recorder::new(client.clone(), "test-controller", Some("host-1"));
    for _ in 0..3 {
        recorder
            .publish(
                &cm.object_reference(),
                EventType::Warning,
                "Broken",
                "it broke",
            )
            .await?;
    }
    recorder
        .publish(
            &cm.object_reference(),
            EventType::Normal,
            "Fixed",
            "it works",
        )
        .await?;

    let events: Api<Event> = client.namespaced("default");
    let list = events.list(&ListParams::default()).await?;
    assert_eq!(list.items.len(), 2, "{:#?}", list.items);
    let broken = list
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some("Broken"))
        .expect("the Broken event");
    assert_eq!(broken.count, Some(3));
    assert_eq!(broken.type_.as_deref(), Some("Warning"));
    assert_eq!(broken.message.as_deref(), Some("it broke"));
    assert_eq!(broken.involved_object.kind.as_deref(), Some("ConfigMap"));
    assert_eq!(broken.involved_object.name.as_deref(), Some("web"));
    assert_eq!(broken.involved_object.uid, cm.uid());
    let source = broken.source.clone().unwrap_or_default();
    assert_eq!(source.component.as_deref(), Some("test-controller"));
    assert_eq!(source.host.as_deref(), Some("host-1"));
    assert!(broken.last_timestamp >= broken.first_timestamp);
    assert!(broken.name_any().starts_with("web."));

    // The event was deleted (expired): the next repeat writes it anew, keeping the count.
    events
        .delete(&broken.name_any(), &DeleteParams::default())
        .await?;
    recorder
        .publish(
            &cm.object_reference(),
            EventType::Warning,
            "Broken",
            "it broke",
        )
        .await?;
    let again = events.get(&broken.name_any()).await?;
    assert_eq!(again.count, Some(4));
    Ok(())
}

#[tokio::test]
async fn events_about_cluster_scoped_objects_go_to_default() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let node = client
        .cluster::<Node>()
        .create(&Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                ..Default::default()
            },
            ..Default::default()
        })
        .await?;
    Recorder::new(client.clone(), "kubelet", Some("n1"))
        .publish(
            &node.object_reference(),
            EventType::Normal,
            "NodeReady",
            "Node n1 status is now: NodeReady",
        )
        .await?;
    let events = client
        .namespaced::<Event>("default")
        .list(&ListParams::default().fields("involvedObject.name=n1"))
        .await?;
    assert_eq!(events.items.len(), 1);
    assert_eq!(events.items[0].reason.as_deref(), Some("NodeReady"));
    Ok(())
}
