//! Why a request's step failed, typed where it happens; `http::error` turns each
//! into the API's error body, in one place.

use crate::bindings::types::Error as ComponentError;
use crate::runtime::CallError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The session does not exist, or is another tenant's.
    #[error("no such session: {0}")]
    NoSession(String),
    /// The tenant's policy denied the request, with its reason.
    #[error("{0}")]
    Denied(String),
    /// The tenant's policy ran past its deadline: the request is denied.
    #[error("the policy ran past its deadline; the request is denied")]
    PolicyTimeout,
    /// The tenant's policy failed: the request is denied (fails closed).
    #[error("the policy failed; the request is denied")]
    PolicyFailed,
    /// The slot's component answered with an error of the API's.
    #[error("{}", .0.message)]
    Component(ComponentError),
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("storage: {0}")]
    Store(#[from] crate::store::Error),
    /// Over one of the tenant's quotas.
    #[error(transparent)]
    Quota(#[from] super::Exceeded),
    /// A write would take the tenant over a storage quota.
    #[error("the write would take the tenant over its {quota} quota ({limit} bytes)")]
    NoRoom { quota: &'static str, limit: u64 },
    /// Anything else the client cannot fix; the detail is for the log.
    #[error("{context}: {detail}")]
    Internal {
        context: &'static str,
        detail: String,
    },
}

impl Error {
    pub fn internal(context: &'static str, detail: impl std::fmt::Display) -> Error {
        Error::Internal {
            context,
            detail: format!("{detail:#}"),
        }
    }
}
