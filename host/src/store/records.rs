//! Records that components keep, scoped by session and collection (one collection
//! per slot), and the index of resources across collections that the generic
//! `resources` endpoints read.

use super::{MAX, Result, Store, blobs, take, window};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use std::collections::BTreeMap;

/// (session, collection, key) → (value, blob the record owns).
pub(super) const RECORDS: TableDefinition<(&str, &str, &str), (&str, Option<u128>)> =
    TableDefinition::new("records");
/// (session, key) → collection: every resource of a session, ordered by id.
const RESOURCES: TableDefinition<(&str, &str), &str> = TableDefinition::new("resources");

pub(super) fn create_tables(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(RECORDS)?;
    tx.open_table(RESOURCES)?;
    Ok(())
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub value: String,
    pub blob: Option<u128>,
}

/// A call's writes to one collection: key → new record, or `None` to delete.
#[derive(Default, Debug)]
pub struct Batch {
    pub ops: BTreeMap<String, Option<Record>>,
}

type Entry = (String, String);

/// How a `move_record` went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Move {
    Moved,
    /// The target session is not the tenant's.
    NoTarget,
    /// The target session already has a record of that key.
    Taken,
    /// The record is not there (any more).
    Gone,
}

impl Store {
    pub fn record(&self, session: &str, collection: &str, key: &str) -> Result<Option<Record>> {
        let tx = self.read()?;
        let table = tx.open_table(RECORDS)?;
        Ok(table.get((session, collection, key))?.map(|v| {
            let (value, blob) = v.value();
            Record {
                value: value.to_owned(),
                blob,
            }
        }))
    }

    /// Up to `limit` records of the collection with keys strictly past `start`.
    pub fn scan_records(
        &self,
        session: &str,
        collection: &str,
        start: Option<&str>,
        ascending: bool,
        limit: usize,
    ) -> Result<Vec<Entry>> {
        let tx = self.read()?;
        let table = tx.open_table(RECORDS)?;
        let range = window(
            (session, collection, ""),
            (session, collection, MAX),
            start.map(|s| (session, collection, s)),
            ascending,
        );
        let range = table.range::<(&str, &str, &str)>(range)?;
        take(range, ascending, limit, |(_, _, key), (value, _)| {
            Ok(Some((key.to_owned(), value.to_owned())))
        })
    }

    /// One resource of the session, whatever its collection: (collection, value).
    pub fn resource(&self, session: &str, key: &str) -> Result<Option<Entry>> {
        let tx = self.read()?;
        let index = tx.open_table(RESOURCES)?;
        let Some(collection) = index.get((session, key))?.map(|c| c.value().to_owned()) else {
            return Ok(None);
        };
        let records = tx.open_table(RECORDS)?;
        let value = records.get((session, collection.as_str(), key))?;
        Ok(value.map(|v| (collection, v.value().0.to_owned())))
    }

    /// Up to `limit` resources of the session, of every collection, with ids strictly
    /// past `start`.
    pub fn scan_resources(
        &self,
        session: &str,
        start: Option<&str>,
        ascending: bool,
        limit: usize,
    ) -> Result<Vec<Entry>> {
        let tx = self.read()?;
        let index = tx.open_table(RESOURCES)?;
        let records = tx.open_table(RECORDS)?;
        let range = window(
            (session, ""),
            (session, MAX),
            start.map(|s| (session, s)),
            ascending,
        );
        let range = index.range::<(&str, &str)>(range)?;
        take(range, ascending, limit, |(_, key), collection| {
            let value = records.get((session, collection, key))?;
            Ok(value.map(|v| (key.to_owned(), v.value().0.to_owned())))
        })
    }

    /// Moves record `key` (owning no blob) of `collection` from session `from` to the
    /// tenant's session `to`, stored as `value`, in one transaction.
    pub fn move_record(
        &self,
        tenant: &str,
        (from, to): (&str, &str),
        collection: &str,
        key: &str,
        value: &str,
    ) -> Result<Move> {
        let tx = self.write()?;
        let outcome = {
            let sessions = tx.open_table(super::sessions::SESSIONS)?;
            let mut records = tx.open_table(RECORDS)?;
            if sessions.get((tenant, to))?.is_none() {
                Move::NoTarget
            } else if records.get((to, collection, key))?.is_some() {
                Move::Taken
            } else if records.remove((from, collection, key))?.is_none() {
                Move::Gone
            } else {
                records.insert((to, collection, key), (value, None))?;
                let mut index = tx.open_table(RESOURCES)?;
                index.remove((from, key))?;
                index.insert((to, key), collection)?;
                Move::Moved
            }
        };
        if outcome == Move::Moved {
            tx.commit()?;
        } else {
            tx.abort()?;
        }
        Ok(outcome)
    }

    /// Applies a call's writes to one collection in one durable transaction.
    pub fn commit(&self, session: &str, collection: &str, batch: &Batch) -> Result<()> {
        if batch.ops.is_empty() {
            return Ok(());
        }
        let tx = self.write()?;
        apply(&tx, session, collection, batch)?;
        tx.commit()?;
        Ok(())
    }
}

/// Stores or deletes a batch's records, claims the blobs they attach and deletes
/// the blobs they drop.
pub(super) fn apply(
    tx: &WriteTransaction,
    session: &str,
    collection: &str,
    batch: &Batch,
) -> Result<()> {
    let mut records = tx.open_table(RECORDS)?;
    let mut index = tx.open_table(RESOURCES)?;
    for (key, op) in &batch.ops {
        let key = key.as_str();
        let old = match op {
            Some(r) => records.insert((session, collection, key), (r.value.as_str(), r.blob))?,
            None => records.remove((session, collection, key))?,
        };
        let old_blob = old.and_then(|o| o.value().1);
        let new_blob = op.as_ref().and_then(|r| r.blob);
        if let Some(blob) = new_blob
            && old_blob != Some(blob)
        {
            blobs::claim(tx, blob)?;
        }
        if let Some(blob) = old_blob
            && new_blob != Some(blob)
        {
            blobs::delete(tx, blob)?;
        }
        match op {
            Some(_) => index.insert((session, key), collection)?,
            None => index.remove((session, key))?,
        };
    }
    Ok(())
}

/// Deletes every record of a session, and the blobs they own.
pub(super) fn delete_all(tx: &WriteTransaction, session: &str) -> Result<()> {
    let mut owned = Vec::new();
    let mut records = tx.open_table(RECORDS)?;
    records.retain_in::<(&str, &str, &str), _>(
        (session, "", "")..(session, MAX, ""),
        |_, (_, blob)| {
            owned.extend(blob);
            false
        },
    )?;
    tx.open_table(RESOURCES)?
        .retain_in::<(&str, &str), _>((session, "")..(session, MAX), |_, _| false)?;
    for blob in owned {
        blobs::delete(tx, blob)?;
    }
    Ok(())
}
