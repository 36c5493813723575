//! Marketplace records in the repository's redb (the tables only the StoreActor opens): `chain_cursor-1`, the
//! last block whose marketplace events were handed to the node, per chain and contract, so a restarted node
//! replays what it missed; `purchases-1`, this node's storage requests as a client (the record's encoding
//! belongs to the PurchasingActor: the store keeps opaque bytes under the request id).

use super::StoreError;
use super::actor::StoreActor;
use super::repo::Repo;
use actix::prelude::*;
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

/// "chainId:contract address" → last handled block. Added after schema 1 shipped, additively.
const CHAIN_CURSOR: TableDefinition<&str, u64> = TableDefinition::new("chain_cursor-1");

/// "chainId:contract address" → the hash of the cursor's block (a reorg below it is noticed at the next poll).
/// Additive: a cursor saved before it has no hash.
const CHAIN_CURSOR_HASH: TableDefinition<&str, &[u8; 32]> = TableDefinition::new("chain_cursor_hash-1");

/// A saved chain cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainCursor {
    /// The last block whose events were handled.
    pub block: u64,
    /// That block's hash, when known.
    pub hash: Option<[u8; 32]>,
}

/// Request id → the PurchasingActor's record. Added after schema 1 shipped, additively.
const PURCHASES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("purchases-1");

/// Purchase records by request id.
pub type PurchaseRecords = Vec<([u8; 32], Vec<u8>)>;

/// Creates the marketplace tables when missing (runs in the opening transaction).
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(CHAIN_CURSOR)?;
    txn.open_table(CHAIN_CURSOR_HASH)?;
    txn.open_table(PURCHASES)?;
    Ok(())
}

impl Repo {
    fn chain_cursor(&self, key: &str) -> Result<Option<ChainCursor>, StoreError> {
        let txn = self.db().begin_read()?;
        let Some(block) = txn.open_table(CHAIN_CURSOR)?.get(key)?.map(|v| v.value()) else { return Ok(None) };
        let hash = match txn.open_table(CHAIN_CURSOR_HASH) {
            Ok(table) => table.get(key)?.map(|v| *v.value()),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(err) => return Err(err.into()),
        };
        Ok(Some(ChainCursor { block, hash }))
    }

    fn save_chain_cursor(&self, key: &str, cursor: ChainCursor) -> Result<(), StoreError> {
        let txn = self.db().begin_write()?;
        txn.open_table(CHAIN_CURSOR)?.insert(key, cursor.block)?;
        {
            let mut hashes = txn.open_table(CHAIN_CURSOR_HASH)?;
            match &cursor.hash {
                Some(hash) => drop(hashes.insert(key, hash)?),
                None => drop(hashes.remove(key)?),
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn put_purchase(&self, id: &[u8; 32], record: &[u8]) -> Result<(), StoreError> {
        let txn = self.db().begin_write()?;
        txn.open_table(PURCHASES)?.insert(id, record)?;
        txn.commit()?;
        Ok(())
    }

    fn purchases(&self) -> Result<PurchaseRecords, StoreError> {
        let txn = self.db().begin_read()?;
        let table = txn.open_table(PURCHASES)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (id, record) = entry?;
            out.push((*id.value(), record.value().to_vec()));
        }
        Ok(out)
    }
}

/// Command: save (insert or replace) the purchase record of request `id`, durably.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), StoreError>")]
pub struct PutPurchase {
    pub id: [u8; 32],
    pub record: Vec<u8>,
}

/// Query: every purchase record, by request id.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<PurchaseRecords, StoreError>")]
pub struct ListPurchases;

impl Handler<PutPurchase> for StoreActor {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, msg: PutPurchase, _: &mut Self::Context) -> Self::Result {
        self.repo()?.put_purchase(&msg.id, &msg.record)
    }
}

impl Handler<ListPurchases> for StoreActor {
    type Result = Result<PurchaseRecords, StoreError>;
    fn handle(&mut self, _: ListPurchases, _: &mut Self::Context) -> Self::Result {
        self.repo()?.purchases()
    }
}

/// Query: the chain cursor saved under `key` ("chainId:contract"), if any.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Option<ChainCursor>, StoreError>")]
pub struct GetChainCursor {
    pub key: String,
}

/// Command: save `cursor` (the last block whose events were handled) under `key`, durably.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), StoreError>")]
pub struct SaveChainCursor {
    pub key: String,
    pub cursor: ChainCursor,
}

impl Handler<GetChainCursor> for StoreActor {
    type Result = Result<Option<ChainCursor>, StoreError>;
    fn handle(&mut self, msg: GetChainCursor, _: &mut Self::Context) -> Self::Result {
        self.repo()?.chain_cursor(&msg.key)
    }
}

impl Handler<SaveChainCursor> for StoreActor {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, msg: SaveChainCursor, _: &mut Self::Context) -> Self::Result {
        self.repo()?.save_chain_cursor(&msg.key, msg.cursor)
    }
}
