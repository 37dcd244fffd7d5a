//! Puts every `/v1` request to the tenant's policy component before anything else
//! happens. A policy that fails or runs late denies (fails closed).

use super::{App, Error};
use crate::bindings::decider::{Decision, Request};
use crate::caps::Caps;
use crate::runtime::CallError;

/// What a request asks to do, as the policy sees it.
#[derive(Default)]
pub struct Ask<'a> {
    pub operation: &'static str,
    pub session: Option<&'a str>,
    pub resource: Option<&'a str>,
    pub path: Option<&'a str>,
    pub command: Option<&'a str>,
    pub upload_bytes: Option<u64>,
    pub content_type: Option<&'a str>,
    pub terminal: Option<&'a str>,
}

impl<'a> Ask<'a> {
    pub fn new(
        operation: &'static str,
        session: Option<&'a str>,
        resource: Option<&'a str>,
    ) -> Self {
        Ask {
            operation,
            session,
            resource,
            ..Ask::default()
        }
    }
}

impl App {
    /// Asks the tenant's policy whether it allows `ask`.
    pub async fn check(&self, tenant: &str, ask: Ask<'_>) -> Result<(), Error> {
        let owned = |s: Option<&str>| s.map(str::to_owned);
        let request = Request {
            tenant: tenant.to_owned(),
            operation: ask.operation.to_owned(),
            session_id: owned(ask.session),
            resource_id: owned(ask.resource),
            path: owned(ask.path),
            command: owned(ask.command),
            upload_bytes: ask.upload_bytes,
            content_type: owned(ask.content_type),
            terminal: owned(ask.terminal),
        };
        let (bound, choice) = self.runtime.policy(tenant);
        let _turn = self.turn(tenant).await?;
        let call = self
            .runtime
            .call_policy(&bound, Caps::none(&self.store), async |policy, store| {
                policy
                    .reshost_api_decider()
                    .call_decide(store, &request, &choice.config)
                    .await
            })
            .await;
        match call {
            Ok((Decision::Allow, _)) => Ok(()),
            Ok((Decision::Deny(reason), _)) => Err(Error::Denied(reason)),
            Err(CallError::Timeout(_)) => Err(Error::PolicyTimeout),
            // Capacity, not the policy's verdict.
            Err(busy @ CallError::Busy { .. }) => Err(Error::Call(busy)),
            Err(e) => {
                tracing::warn!(tenant, error = %e, "policy failed; denying");
                Err(Error::PolicyFailed)
            }
        }
    }
}
