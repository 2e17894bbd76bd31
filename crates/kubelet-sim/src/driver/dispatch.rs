//! Carrying out a pod machine's actions: hand them to the runtime (runtime reports due later come
//! back through the driver's timers) and record the Events they call for.

use super::*;

impl Driver {
    pub(super) fn dispatch(
        &mut self,
        entry: &mut PodEntry,
        action: Action,
        now: Timestamp,
        immediate: &mut Vec<Event>,
        remove: &mut bool,
    ) {
        let rt = &self.runtime;
        let h = &entry.handle;
        let scheduled: Vec<Scheduled> = match action {
            // hostNetwork pods have the node's address, as in Kubernetes (no IP of their own).
            Action::CreateSandbox if host_network(&h.pod) => {
                rt.create_sandbox(h, h.node.ip, &self.sink)
            }
            Action::CreateSandbox => {
                let node = &h.node.name;
                match self
                    .nodes
                    .get_mut(node)
                    .map(|slot| slot.ipam.allocate(&h.uid))
                {
                    Some(Ok(ip)) => rt.create_sandbox(h, ip, &self.sink),
                    Some(Err(e)) => vec![Scheduled::now(Event::SandboxFailed {
                        reason: "FailedCreatePodSandBox",
                        message: e.to_string(),
                    })],
                    None => Vec::new(),
                }
            }
            Action::StartContainer { container } => rt.start_container(h, &container, &self.sink),
            Action::Probe {
                container,
                container_id,
                kind,
            } => rt.probe(h, &container, &container_id, kind, &self.sink),
            Action::PreStop {
                container,
                container_id,
                timeout,
            } => rt.pre_stop(h, &container, &container_id, timeout, &self.sink),
            Action::Signal {
                container,
                container_id,
                signal,
            } => rt.signal(h, &container, &container_id, signal, &self.sink),
            Action::KillSandbox => {
                if let Some(slot) = self.nodes.get_mut(&h.node.name) {
                    slot.ipam.release(&h.uid);
                }
                rt.kill_sandbox(h, &self.sink)
            }
            Action::RemovePod => {
                *remove = true;
                Vec::new()
            }
            Action::Record {
                type_,
                reason,
                message,
                container,
            } => {
                self.record(h, type_, reason, message, container.as_deref());
                Vec::new()
            }
        };
        for s in scheduled {
            if s.after.is_zero() {
                immediate.push(s.event);
            } else {
                self.add_timer(after(now, s.after), Timer::Deliver(h.uid.clone(), s.event));
            }
        }
    }

    pub(super) fn record(
        &self,
        h: &PodHandle,
        type_: EventType,
        reason: &'static str,
        message: String,
        container: Option<&str>,
    ) {
        let Some(tx) = &self.records else { return };
        let field_path = container.and_then(|c| {
            let spec = h.pod.spec.as_ref()?;
            if spec.containers.iter().any(|x| x.name == c) {
                return Some(format!("spec.containers{{{c}}}"));
            }
            spec.init_containers
                .iter()
                .flatten()
                .any(|x| x.name == c)
                .then(|| format!("spec.initContainers{{{c}}}"))
        });
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(h.namespace().to_string()),
            name: Some(h.name().to_string()),
            uid: Some(h.uid.clone()),
            resource_version: h.pod.metadata.resource_version.clone(),
            field_path,
        };
        if tx.try_send((reference, type_, reason, message)).is_err() {
            debug!("event queue full; event dropped");
        }
    }
}
