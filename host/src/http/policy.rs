//! Puts every `/v1` request to the tenant's policy component before anything else
//! happens. A policy that fails or runs late denies (fails closed).

use super::error::{ApiError, ApiResult, Code};
use crate::app::App;
use crate::caps::Caps;
use crate::runtime::CallError;
use crate::runtime::bindings::decider::{Decision, Request};

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

pub async fn check(app: &App, tenant: &str, ask: Ask<'_>) -> ApiResult<()> {
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
    let (bound, choice) = app.runtime.policy(tenant);
    let call = app
        .runtime
        .call_policy(&bound, Caps::none(&app.store), async |policy, store| {
            policy
                .reshost_api_decider()
                .call_decide(store, &request, &choice.config)
                .await
        })
        .await;
    match call {
        Ok((Decision::Allow, _)) => Ok(()),
        Ok((Decision::Deny(reason), _)) => Err(ApiError::new(Code::Forbidden, reason)),
        Err(CallError::Timeout(_)) => Err(ApiError::new(
            Code::ComponentTimeout,
            "the policy ran past its deadline; the request is denied",
        )),
        Err(e) => {
            tracing::warn!(tenant, error = %e, "policy failed; denying");
            Err(ApiError::new(
                Code::Forbidden,
                "the policy failed; the request is denied",
            ))
        }
    }
}
