//! The facade's Swarm calls: the engine's Swarm state, its nodes, and a stack's services and
//! tasks (found by the `com.docker.stack.namespace` label `docker stack deploy` sets).

use std::collections::HashMap;

use bollard::models::{LocalNodeState, Node, Service, Task};
use bollard::query_parameters::{ListServicesOptions, ListTasksOptions};

use super::Docker;
use super::error::{DockerError, Result};

/// The label `docker stack deploy` puts on a stack's services, networks, secrets and configs.
pub const LABEL_STACK: &str = "com.docker.stack.namespace";

/// Whether this engine is a Swarm node, and a manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwarmRole {
    NotInSwarm,
    Worker,
    Manager,
}

impl Docker {
    /// This engine's place in a Swarm.
    pub async fn swarm_role(&self) -> Result<SwarmRole> {
        let info =
            self.inner.info().await.map_err(|e| {
                DockerError::engine("reading the engine's info".into(), "engine", e)
            })?;
        let swarm = info.swarm.unwrap_or_default();
        Ok(match (swarm.local_node_state, swarm.control_available) {
            (Some(LocalNodeState::ACTIVE), Some(true)) => SwarmRole::Manager,
            (Some(LocalNodeState::ACTIVE), _) => SwarmRole::Worker,
            _ => SwarmRole::NotInSwarm,
        })
    }

    /// The Swarm's nodes (a manager only).
    pub async fn list_nodes(&self) -> Result<Vec<Node>> {
        self.inner
            .list_nodes(None)
            .await
            .map_err(|e| DockerError::engine("listing the Swarm's nodes".into(), "nodes", e))
    }

    /// The services of stack `stack`.
    pub async fn stack_services(&self, stack: &str) -> Result<Vec<Service>> {
        let filters =
            HashMap::from([("label".to_string(), vec![format!("{LABEL_STACK}={stack}")])]);
        self.inner
            .list_services(Some(ListServicesOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| {
                DockerError::engine(format!("listing the services of stack {stack}"), stack, e)
            })
    }

    /// The tasks of service `service` (by name), current and past.
    pub async fn service_tasks(&self, service: &str) -> Result<Vec<Task>> {
        let filters = HashMap::from([("service".to_string(), vec![service.to_string()])]);
        self.inner
            .list_tasks(Some(ListTasksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| {
                DockerError::engine(
                    format!("listing the tasks of service {service}"),
                    service,
                    e,
                )
            })
    }
}
