//! Marketplace records in the repository's redb (the tables only the StoreActor opens): `chain_cursor-1`, the
//! last block whose marketplace events were handed to the node, per chain and contract, so a restarted node
//! replays what it missed.

use super::StoreError;
use super::actor::StoreActor;
use super::repo::Repo;
use actix::prelude::*;
use redb::{ReadableDatabase, TableDefinition, WriteTransaction};

/// "chainId:contract address" → last handled block. Added after schema 1 shipped, additively.
const CHAIN_CURSOR: TableDefinition<&str, u64> = TableDefinition::new("chain_cursor-1");

/// Creates the marketplace tables when missing (runs in the opening transaction).
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(CHAIN_CURSOR)?;
    Ok(())
}

impl Repo {
    fn chain_cursor(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let txn = self.db().begin_read()?;
        Ok(txn.open_table(CHAIN_CURSOR)?.get(key)?.map(|v| v.value()))
    }

    fn save_chain_cursor(&self, key: &str, block: u64) -> Result<(), StoreError> {
        let txn = self.db().begin_write()?;
        txn.open_table(CHAIN_CURSOR)?.insert(key, block)?;
        txn.commit()?;
        Ok(())
    }
}

/// Query: the chain cursor saved under `key` ("chainId:contract"), if any.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Option<u64>, StoreError>")]
pub struct GetChainCursor {
    pub key: String,
}

/// Command: save `block` as the last block whose events were handled, under `key`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), StoreError>")]
pub struct SaveChainCursor {
    pub key: String,
    pub block: u64,
}

impl Handler<GetChainCursor> for StoreActor {
    type Result = Result<Option<u64>, StoreError>;
    fn handle(&mut self, msg: GetChainCursor, _: &mut Self::Context) -> Self::Result {
        self.repo()?.chain_cursor(&msg.key)
    }
}

impl Handler<SaveChainCursor> for StoreActor {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, msg: SaveChainCursor, _: &mut Self::Context) -> Self::Result {
        self.repo()?.save_chain_cursor(&msg.key, msg.block)
    }
}
