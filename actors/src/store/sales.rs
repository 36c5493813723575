//! The host's sales records in the repository's redb (issue 13): `availabilities-1` and `reservations-1` (the
//! SalesActor's ledger, bincode of `codex_protocol::sales::{Availability, Reservation}`) and `sales-1` (one row
//! per slot a sale is under way for; its encoding belongs to the SalesAgent: opaque bytes here). The bytes
//! reserved for sales are the persisted `quota_reserved` counter: [`CommitSales`] writes rows and the counter
//! in one transaction, after checking the quota when the reservation grows, so a crash never leaves an
//! availability without its reservation or the counter out of step with the rows.

use super::StoreError;
use super::actor::StoreActor;
use super::repo::{Repo, encode};
use super::tables::Tables;
use actix::prelude::*;
use codex_protocol::sales::{Availability, B256, Reservation};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

const AVAILABILITIES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("availabilities-1");
const RESERVATIONS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("reservations-1");
const SALES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("sales-1");

/// Creates the sales tables when missing (runs in the opening transaction; added after schema 1, additively).
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(AVAILABILITIES)?;
    txn.open_table(RESERVATIONS)?;
    txn.open_table(SALES)?;
    Ok(())
}

/// Everything the sales tables hold.
#[derive(Debug, Clone, Default)]
pub struct SalesRecords {
    pub availabilities: Vec<Availability>,
    pub reservations: Vec<Reservation>,
    /// Slot id → the agent's record.
    pub sales: Vec<(B256, Vec<u8>)>,
    /// The persisted reservation counter (`quota_reserved`).
    pub reserved: u64,
}

fn decode<T: for<'de> serde::Deserialize<'de>>(bytes: &[u8], what: &'static str) -> Result<T, StoreError> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(value, _)| value)
        .map_err(|err| StoreError::Corrupt { what, reason: err.to_string() })
}

impl Repo {
    fn sales_records(&self) -> Result<SalesRecords, StoreError> {
        let txn = self.db().begin_read()?;
        let mut records = SalesRecords::default();
        for entry in txn.open_table(AVAILABILITIES)?.iter()? {
            records.availabilities.push(decode(entry?.1.value(), "availability")?);
        }
        for entry in txn.open_table(RESERVATIONS)?.iter()? {
            records.reservations.push(decode(entry?.1.value(), "reservation")?);
        }
        for entry in txn.open_table(SALES)?.iter()? {
            let (id, record) = entry?;
            records.sales.push((B256::from(*id.value()), record.value().to_vec()));
        }
        records.reserved = super::tables::ReadTables::open(&txn)?.counters()?.reserved;
        Ok(records)
    }

    fn commit_sales(&self, msg: &CommitSales, counters: Option<super::Counters>) -> Result<(), StoreError> {
        let txn = self.db().begin_write()?;
        {
            let mut availabilities = txn.open_table(AVAILABILITIES)?;
            for availability in &msg.availabilities {
                availabilities.insert(&availability.id.0, encode(availability).as_slice())?;
            }
            let mut reservations = txn.open_table(RESERVATIONS)?;
            for reservation in &msg.reservations {
                reservations.insert(&reservation.id.0, encode(reservation).as_slice())?;
            }
            for id in &msg.delete_reservations {
                reservations.remove(&id.0)?;
            }
            let mut sales = txn.open_table(SALES)?;
            for (slot, record) in &msg.sales {
                sales.insert(&slot.0, record.as_slice())?;
            }
            for slot in &msg.delete_sales {
                sales.remove(&slot.0)?;
            }
        }
        if let Some(counters) = counters {
            Tables::open(&txn)?.write_counters(&counters)?;
        }
        txn.commit()?;
        Ok(())
    }
}

impl Repo {
    fn set_block_expiry(&self, cid: &codex_protocol::Cid, expiry: u64) -> Result<bool, StoreError> {
        let key = cid.to_bytes();
        let txn = self.db().begin_write()?;
        let found = {
            let mut t = Tables::open(&txn)?;
            let record = match t.blocks.get(key.as_slice())? {
                Some(value) => {
                    let mut record: super::repo::BlockRecord = decode(value.value(), "block record")?;
                    record.expiry = expiry;
                    Some(record)
                }
                None => None,
            };
            if let Some(record) = &record {
                t.blocks.insert(key.as_slice(), encode(record).as_slice())?;
            }
            record.is_some()
        };
        txn.commit()?;
        Ok(found)
    }
}

/// Command: set the expiry (Unix seconds) of standalone block `cid`, typically a hosted slot's manifest, with
/// which the slot expires (onExpiryUpdate). Answers whether the block is stored.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<bool, StoreError>")]
pub struct SetBlockExpiry {
    pub cid: codex_protocol::Cid,
    pub expiry: u64,
}

impl Handler<SetBlockExpiry> for StoreActor {
    type Result = Result<bool, StoreError>;
    fn handle(&mut self, msg: SetBlockExpiry, _: &mut Self::Context) -> Self::Result {
        self.repo()?.set_block_expiry(&msg.cid, msg.expiry)
    }
}

/// Query: every sales record and the reservation counter.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<SalesRecords, StoreError>")]
pub struct LoadSales;

/// Command: write sales records in one durable transaction. `reserved`, when given, becomes the persisted
/// reservation counter; growing it past the quota fails with [`StoreError::QuotaExceeded`] and writes nothing.
#[derive(Message, Debug, Clone, Default)]
#[rtype(result = "Result<(), StoreError>")]
pub struct CommitSales {
    pub availabilities: Vec<Availability>,
    pub reservations: Vec<Reservation>,
    pub delete_reservations: Vec<B256>,
    pub sales: Vec<(B256, Vec<u8>)>,
    pub delete_sales: Vec<B256>,
    pub reserved: Option<u64>,
    /// Set `reserved` even past the quota: bytes given back by a sale that ended, which were counted before
    /// (a clean-up must never fail for want of space).
    pub force: bool,
}

impl Handler<LoadSales> for StoreActor {
    type Result = Result<SalesRecords, StoreError>;
    fn handle(&mut self, _: LoadSales, _: &mut Self::Context) -> Self::Result {
        self.repo()?.sales_records()
    }
}

impl Handler<CommitSales> for StoreActor {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, msg: CommitSales, _: &mut Self::Context) -> Self::Result {
        // The in-memory counter moves first (checked against the quota under the gate's lock, so uploads on
        // other threads see it), and back if the transaction fails.
        let before = match msg.reserved {
            Some(reserved) if msg.force => {
                let before = self.quota.counters();
                self.quota.set_reserved_unchecked(reserved);
                Some(before)
            }
            Some(reserved) => Some(self.quota.set_reserved(reserved)?),
            None => None,
        };
        let counters = before.map(|_| self.quota.counters());
        let result = self.repo().and_then(|repo| repo.commit_sales(&msg, counters));
        if let (Err(_), Some(before)) = (&result, before) {
            self.quota.set_reserved_unchecked(before.reserved);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;
    use codex_protocol::sales::U256;

    fn availability(total: u64) -> Availability {
        Availability {
            id: B256::repeat_byte(1),
            total_size: total,
            free_size: total,
            duration: 60,
            min_price_per_byte_per_second: U256::from(1u8),
            total_collateral: U256::from(10u8),
            total_remaining_collateral: U256::from(10u8),
            enabled: true,
            until: 0,
        }
    }

    /// Rows and the reservation counter are written together and survive a reopen; growing the reservation
    /// past the quota writes nothing.
    #[actix_rt::test]
    async fn sales_rows_and_the_reserved_counter_commit_together_within_the_quota() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config =
            StoreConfig { repo_dir: dir.path().join("repo"), quota_max: 1000, block_ttl: None, sweep_batch: 10 };
        {
            let actor = StoreActor::open(config.clone()).expect("open");
            let quota = actor.quota();
            let store = actor.start();
            let commit =
                CommitSales { availabilities: vec![availability(600)], reserved: Some(600), ..Default::default() };
            store.send(commit).await.expect("mailbox").expect("fits");
            assert_eq!(quota.space().quota_reserved_bytes, 600);
            let mut bigger = availability(1200);
            bigger.id = B256::repeat_byte(2);
            let refused = CommitSales { availabilities: vec![bigger], reserved: Some(1800), ..Default::default() };
            let err = store.send(refused).await.expect("mailbox").expect_err("over the quota");
            assert!(matches!(err, StoreError::QuotaExceeded { .. }), "{err}");
            assert_eq!(quota.space().quota_reserved_bytes, 600, "a refused commit changes nothing");
            let sale = CommitSales { sales: vec![(B256::repeat_byte(3), vec![1, 2, 3])], ..Default::default() };
            store.send(sale).await.expect("mailbox").expect("written");
            store.send(crate::store::CloseStore).await.expect("closed");
        }
        let actor = StoreActor::open(config).expect("reopen");
        assert_eq!(actor.quota().space().quota_reserved_bytes, 600, "the counter is durable");
        let records = actor.start().send(LoadSales).await.expect("mailbox").expect("records");
        assert_eq!(records.availabilities, vec![availability(600)]);
        assert_eq!(records.sales, vec![(B256::repeat_byte(3), vec![1, 2, 3])]);
        assert_eq!(records.reserved, 600);
    }
}
