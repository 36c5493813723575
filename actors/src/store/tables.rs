//! The repository's redb tables, the one place that opens them, and the schema version check.
//!
//! Table names carry the schema version (`"datasets-1"`); the `meta` table keeps the counters and the
//! `schema_version` key. [`init_schema`] runs at every open: a fresh database gets [`SCHEMA_VERSION`], a
//! database of this version opens, a newer one is refused ([`StoreError::SchemaTooNew`]) and one written before
//! names were versioned is refused too ([`StoreError::UnversionedRepository`]), rather than being read as
//! empty. Nothing is written when the check fails.

use super::StoreError;
use super::repo::Counters;
use redb::{ReadOnlyTable, ReadTransaction, ReadableTable, Table, TableDefinition, TableHandle, WriteTransaction};

/// The schema these tables follow. Bump it (and the table names) with every incompatible change.
pub const SCHEMA_VERSION: u64 = 1;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const TREES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("trees-1");
const BLOCKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blocks-1");
const DATASETS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("datasets-1");
const LEAF_INDEX: TableDefinition<&[u8], (&[u8], u64)> = TableDefinition::new("leaf_index-1");
const DOWNLOADS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("downloads-1");
/// Added after schema 1 shipped, additively: opening creates it when missing.
const SLOTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("slots-1");

/// Table names of the repositories written before the schema was versioned.
const UNVERSIONED: [&str; 5] = ["trees", "blocks", "datasets", "leaf_index", "downloads"];

const SCHEMA_KEY: &str = "schema_version";
const USED: &str = "quota_used";
const RESERVED: &str = "quota_reserved";
const TOTAL_BLOCKS: &str = "total_blocks";

type Bytes = &'static [u8];

/// Every table of a write transaction, opened once.
pub struct Tables<'txn> {
    pub meta: Table<'txn, &'static str, u64>,
    /// tree CID → bincode [`super::repo::TreeRecord`]
    pub trees: Table<'txn, Bytes, Bytes>,
    /// CID → bincode [`super::repo::BlockRecord`]
    pub blocks: Table<'txn, Bytes, Bytes>,
    /// manifest CID → tree CID
    pub datasets: Table<'txn, Bytes, Bytes>,
    /// block CID → (tree CID, leaf index)
    pub leaf_index: Table<'txn, Bytes, (Bytes, u64)>,
    /// tree CID → bincode [`super::repo::DownloadRecord`]
    pub downloads: Table<'txn, Bytes, Bytes>,
    /// tree CID → bincode [`super::repo::SlotRecord`]: the download of that tree is one slot's leaves.
    pub slots: Table<'txn, Bytes, Bytes>,
}

impl<'txn> Tables<'txn> {
    /// Opens (creating them if needed) every table of `txn`.
    pub fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            meta: txn.open_table(META)?,
            trees: txn.open_table(TREES)?,
            blocks: txn.open_table(BLOCKS)?,
            datasets: txn.open_table(DATASETS)?,
            leaf_index: txn.open_table(LEAF_INDEX)?,
            downloads: txn.open_table(DOWNLOADS)?,
            slots: txn.open_table(SLOTS)?,
        })
    }

    /// Persists the counters.
    pub fn write_counters(&mut self, counters: &Counters) -> Result<(), StoreError> {
        self.meta.insert(USED, counters.used)?;
        self.meta.insert(RESERVED, counters.reserved)?;
        self.meta.insert(TOTAL_BLOCKS, counters.total_blocks)?;
        Ok(())
    }
}

/// Every table of a read transaction.
pub struct ReadTables {
    pub meta: ReadOnlyTable<&'static str, u64>,
    pub trees: ReadOnlyTable<Bytes, Bytes>,
    pub blocks: ReadOnlyTable<Bytes, Bytes>,
    pub datasets: ReadOnlyTable<Bytes, Bytes>,
    pub leaf_index: ReadOnlyTable<Bytes, (Bytes, u64)>,
    pub downloads: ReadOnlyTable<Bytes, Bytes>,
    pub slots: ReadOnlyTable<Bytes, Bytes>,
}

impl ReadTables {
    /// Opens every table of `txn` (they exist: [`init_schema`] created them).
    pub fn open(txn: &ReadTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            meta: txn.open_table(META)?,
            trees: txn.open_table(TREES)?,
            blocks: txn.open_table(BLOCKS)?,
            datasets: txn.open_table(DATASETS)?,
            leaf_index: txn.open_table(LEAF_INDEX)?,
            downloads: txn.open_table(DOWNLOADS)?,
            slots: txn.open_table(SLOTS)?,
        })
    }

    /// The persisted counters.
    pub fn counters(&self) -> Result<Counters, StoreError> {
        let get = |key| -> Result<u64, StoreError> { Ok(self.meta.get(key)?.map_or(0, |v| v.value())) };
        Ok(Counters { used: get(USED)?, reserved: get(RESERVED)?, total_blocks: get(TOTAL_BLOCKS)? })
    }
}

/// Checks the schema version of the database, or stamps a fresh one, and creates every table. The caller
/// commits `txn` only when this succeeds.
pub fn init_schema(txn: &WriteTransaction) -> Result<(), StoreError> {
    let unversioned = txn.list_tables()?.any(|table| UNVERSIONED.contains(&table.name()));
    let mut tables = Tables::open(txn)?;
    let found = tables.meta.get(SCHEMA_KEY)?.map(|v| v.value());
    match found {
        Some(SCHEMA_VERSION) => Ok(()),
        Some(found) => Err(StoreError::SchemaTooNew { found, supported: SCHEMA_VERSION }),
        None if unversioned || tables.meta.first()?.is_some() => Err(StoreError::UnversionedRepository),
        None => {
            tables.meta.insert(SCHEMA_KEY, SCHEMA_VERSION)?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{Database, ReadableDatabase};

    fn db(dir: &tempfile::TempDir) -> Database {
        Database::create(dir.path().join("meta.redb")).expect("db")
    }

    fn init(db: &Database) -> Result<(), StoreError> {
        let txn = db.begin_write()?;
        init_schema(&txn)?;
        txn.commit()?;
        Ok(())
    }

    #[test]
    fn a_fresh_database_gets_the_current_version_and_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = db(&dir);
        init(&db).expect("fresh");
        let txn = db.begin_read().expect("read");
        let tables = ReadTables::open(&txn).expect("tables exist");
        assert_eq!(tables.meta.get(SCHEMA_KEY).expect("get").map(|v| v.value()), Some(SCHEMA_VERSION));
        drop((tables, txn));
        init(&db).expect("same version opens");
    }

    #[test]
    fn a_newer_schema_is_refused_without_writing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = db(&dir);
        let txn = db.begin_write().expect("write");
        txn.open_table(META).expect("meta").insert(SCHEMA_KEY, SCHEMA_VERSION + 1).expect("insert");
        txn.commit().expect("commit");
        match init(&db) {
            Err(StoreError::SchemaTooNew { found, supported }) => assert_eq!((found, supported), (2, 1)),
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
        let txn = db.begin_read().expect("read");
        assert!(txn.open_table(TREES).is_err(), "nothing was created by the refused open");
    }

    #[test]
    fn an_unversioned_repository_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = db(&dir);
        let old: TableDefinition<&[u8], &[u8]> = TableDefinition::new("datasets");
        let txn = db.begin_write().expect("write");
        txn.open_table(old).expect("old table").insert(b"k".as_slice(), b"v".as_slice()).expect("insert");
        txn.open_table(META).expect("meta").insert(USED, 7).expect("insert");
        txn.commit().expect("commit");
        assert!(matches!(init(&db), Err(StoreError::UnversionedRepository)));
    }
}
