//! The NodeActor's host side (issue 13): [`SalesCall`] forwards one SalesActor message (`CreateAvailability`,
//! `UpdateAvailability`, `ListAvailabilities`, `ListReservations`, `ListActiveSlots`, `GetSlotAgent`; see
//! [`crate::sales`]) from the REST layer and answers the SalesActor's reply. Without persistence it answers
//! [`NodeError::NoPersistence`]; a stopped SalesActor is [`SalesError::Gone`], and every sales failure is
//! [`NodeError::Sales`].

use super::{NodeActor, NodeError};
use crate::sales::{SalesActor, SalesError};
use actix::prelude::*;

/// Command or query: `M`, one of the SalesActor's public messages, sent to the SalesActor through the node
/// (e.g. `node.send(SalesCall(ListAvailabilities))`). Its result is `M`'s, with errors as [`NodeError`].
#[derive(Debug, Clone)]
pub struct SalesCall<M>(pub M);

impl<M, T> Message for SalesCall<M>
where
    M: Message<Result = Result<T, SalesError>>,
    T: 'static,
{
    type Result = Result<T, NodeError>;
}

impl<M, T> Handler<SalesCall<M>> for NodeActor
where
    M: Message<Result = Result<T, SalesError>> + Send + 'static,
    T: Send + 'static,
    SalesActor: Handler<M>,
{
    type Result = ResponseFuture<Result<T, NodeError>>;
    fn handle(&mut self, msg: SalesCall<M>, _: &mut Self::Context) -> Self::Result {
        let sales = self.sales();
        Box::pin(async move { Ok(sales?.send(msg.0).await.map_err(SalesError::from)??) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maintenance::MaintenanceConfig;
    use crate::node::NodeConfig;
    use crate::sales::ListAvailabilities;
    use crate::store::StoreConfig;
    use std::time::Duration;

    #[actix_rt::test]
    async fn without_persistence_a_sales_call_answers_no_persistence() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = NodeConfig {
            data_dir: dir.path().to_owned(),
            peer_id: libp2p_identity::Keypair::generate_ed25519().public().to_peer_id(),
            store: StoreConfig {
                repo_dir: dir.path().join("repo"),
                quota_max: 1 << 20,
                block_ttl: None,
                sweep_batch: 100,
            },
            maintenance: MaintenanceConfig { interval: Duration::from_secs(600) },
            network: None,
            exchange: Default::default(),
            coding_threads: 1,
            prover: None,
        };
        let node = NodeActor::start(config).expect("node starts");
        let answer = node.send(SalesCall(ListAvailabilities)).await.expect("node answers");
        assert!(matches!(answer, Err(NodeError::NoPersistence)), "{answer:?}");
    }
}
