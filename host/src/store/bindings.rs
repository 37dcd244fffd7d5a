//! What operators bound to slots, so that swaps survive a restart: each wasm
//! once, by sha256, and per binding (a slot, or a tenant's policy) its history,
//! its limits and what the config file said when it was last applied.
//!
//! A binding and the wasm it needs are written in one transaction; wasm that no
//! binding's history names any more is deleted in the same transaction.

use super::{Result, Store};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// sha256 → the component's wasm.
const WASM: TableDefinition<&str, &[u8]> = TableDefinition::new("component_wasm");
/// Binding key (`slot:files`, `tenant:acme`) → [`Binding`] as JSON.
const BINDINGS: TableDefinition<&str, &str> = TableDefinition::new("component_bindings");

pub(super) fn create_tables(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(WASM)?;
    tx.open_table(BINDINGS)?;
    Ok(())
}

/// One component a binding used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub sha256: String,
    /// Where it came from: `embedded:files`, a config path, `admin`.
    pub source: String,
    /// Unix seconds.
    pub loaded_at: u64,
}

/// A slot's (or a tenant policy's) persisted state.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Binding {
    /// Oldest first; the last is bound now. For a tenant policy, empty means the
    /// default policy.
    pub history: Vec<Entry>,
    /// What the config file asked for when it was last applied: a config that
    /// still says the same does not undo an operator's later swap.
    pub config: Option<String>,
    /// Limits set through the admin API (else the config's).
    #[serde(default)]
    pub limits: Option<serde_json::Value>,
    /// A tenant policy's `policy_config`.
    #[serde(default)]
    pub policy_config: Option<serde_json::Value>,
}

fn corrupt(key: &str, e: serde_json::Error) -> super::Error {
    super::Error::Corrupt {
        what: format!("binding {key}"),
        detail: e.to_string(),
    }
}

impl Store {
    pub fn binding(&self, key: &str) -> Result<Option<Binding>> {
        let tx = self.read()?;
        let table = tx.open_table(BINDINGS)?;
        table
            .get(key)?
            .map(|v| serde_json::from_str(v.value()).map_err(|e| corrupt(key, e)))
            .transpose()
    }

    /// The wasm of a component some binding used.
    pub fn wasm(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        let tx = self.read()?;
        let table = tx.open_table(WASM)?;
        Ok(table.get(sha256)?.map(|v| v.value().to_vec()))
    }

    /// Writes `binding` (its history cut to the newest `keep` entries) and the
    /// wasm of its current component, and drops wasm nothing names any more.
    pub fn save_binding(
        &self,
        key: &str,
        binding: &mut Binding,
        wasm: Option<&[u8]>,
        keep: usize,
    ) -> Result<()> {
        let excess = binding.history.len().saturating_sub(keep.max(1));
        binding.history.drain(..excess);
        let json = serde_json::to_string(binding).map_err(|e| corrupt(key, e))?;
        let tx = self.write()?;
        {
            let mut wasms = tx.open_table(WASM)?;
            if let (Some(bytes), Some(current)) = (wasm, binding.history.last())
                && wasms.get(current.sha256.as_str())?.is_none()
            {
                wasms.insert(current.sha256.as_str(), bytes)?;
            }
            let mut bindings = tx.open_table(BINDINGS)?;
            bindings.insert(key, json.as_str())?;
            let mut named = HashSet::new();
            for entry in bindings.iter()? {
                let (k, v) = entry?;
                let other: Binding =
                    serde_json::from_str(v.value()).map_err(|e| corrupt(k.value(), e))?;
                named.extend(other.history.into_iter().map(|e| e.sha256));
            }
            let unnamed: Vec<String> = wasms
                .iter()?
                .map(|e| Ok(e?.0.value().to_owned()))
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .filter(|sha| !named.contains(sha))
                .collect();
            for sha in unnamed {
                wasms.remove(sha.as_str())?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}
