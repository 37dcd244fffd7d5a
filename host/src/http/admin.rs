//! `/admin/v1`: the operators' API. Only `[admin] tokens` are accepted (a
//! tenant's token is `401`); without admin tokens in the config it does not
//! exist (`404`).
//!
//! - `GET /admin/v1/slots`, `GET /admin/v1/slots/{slot}`: the bound component
//!   (sha256, size, world, WIT version, source, when loaded), the earlier ones
//!   rollback returns to, and the slot's limits.
//! - `PUT /admin/v1/slots/{slot}` with the `.wasm` as the body: checked, then
//!   swapped in.
//! - `POST /admin/v1/slots/{slot}/rollback`: back to the previous component.
//! - `PUT /admin/v1/slots/{slot}/limits` `{"memory_bytes", "timeout_ms"}`.
//! - `GET`/`PUT /admin/v1/tenants/{tenant}/policy`: multipart with a `component`
//!   part (the `.wasm`), a `policy_config` part (a JSON object), or both.
//! - `GET /admin/v1/tenants/{tenant}/usage`: its quotas beside what it uses.
//! - `GET /admin/v1/sandbox`: the sandbox's mode and which layers are active.

use super::body::{Body, ok, read_bytes, read_json};
use super::error::{ApiError, ApiResult};
use super::routes::{Found, Route};
use crate::app::App;
use crate::config::SlotLimits;
use crate::slots::SlotName;
use http::{Request, Response, header};
use hyper::body::Incoming;
use serde::Serialize;

fn json(value: &impl Serialize) -> ApiResult<Response<Body>> {
    ok(serde_json::to_string(value).map_err(|e| ApiError::internal("answering", e))?)
}

fn slot(name: &str) -> ApiResult<SlotName> {
    SlotName::parse(name).ok_or_else(|| {
        let known = SlotName::names();
        ApiError::not_found(format!("no such slot: {name} (slots: {known:?})"))
    })
}

/// Serves an `/admin/v1` request (`404` while the admin API is off).
pub async fn route(
    app: &App,
    found: ApiResult<Found>,
    req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    if !app.admin.enabled() {
        return Err(super::no_route());
    }
    app.admin.authenticate(req.headers())?;
    let found = found?;
    let (name, tenant) = (found.param("slot"), found.param("tenant"));
    let limit = app.config.limits.max_component_bytes;
    match found.route {
        Route::ListSlots => {
            let slots = SlotName::ALL
                .iter()
                .map(|&s| app.runtime.slot_view(s))
                .collect::<Result<Vec<_>, _>>()?;
            json(&serde_json::json!({"object": "list", "data": slots}))
        }
        Route::GetSlot => json(&app.runtime.slot_view(slot(name)?)?),
        Route::PutSlot => {
            let slot = slot(name)?;
            let wasm = read_bytes(req.into_body(), limit).await?;
            let view = app.runtime.swap(slot, &wasm, "admin").await?;
            tracing::info!(
                slot = slot.as_str(),
                sha256 = view.component.sha256,
                "slot swapped"
            );
            json(&view)
        }
        Route::RollbackSlot => {
            let slot = slot(name)?;
            let view = app.runtime.rollback(slot).await?;
            tracing::info!(
                slot = slot.as_str(),
                sha256 = view.component.sha256,
                "slot rolled back"
            );
            json(&view)
        }
        Route::PutSlotLimits => {
            let slot = slot(name)?;
            let body = read_json(req.into_body(), app.config.limits.max_json_bytes).await?;
            if !body.is_object() {
                return Err(ApiError::invalid(
                    "limits must be a JSON object {\"memory_bytes\": n, \"timeout_ms\": n}",
                ));
            }
            let limits: SlotLimits = serde_json::from_value(body).map_err(|e| {
                ApiError::invalid(format!(
                    "limits must be {{\"memory_bytes\": n, \"timeout_ms\": n}}: {e}"
                ))
            })?;
            json(&app.runtime.set_limits(slot, limits).await?)
        }
        Route::GetTenantPolicy => json(&app.runtime.tenant_view(tenant)?),
        Route::PutTenantPolicy => {
            // Unknown tenants are refused before the body is read.
            app.runtime.tenant_view(tenant)?;
            let (wasm, config) = policy_parts(app, req).await?;
            let view = app
                .runtime
                .set_tenant_policy(tenant, wasm.as_deref(), config)
                .await?;
            tracing::info!(tenant, "tenant policy set");
            json(&view)
        }
        Route::GetTenantUsage => {
            // Known tenants only, as for their policy.
            app.runtime.tenant_view(tenant)?;
            json(&app.usage(tenant).await?)
        }
        Route::GetSandbox => json(app.sandbox.report()),
        _ => Err(super::no_route()),
    }
}

/// The `component` and `policy_config` parts of a tenant policy PUT.
async fn policy_parts(
    app: &App,
    req: Request<Incoming>,
) -> ApiResult<(Option<Vec<u8>>, Option<serde_json::Value>)> {
    let usage = "a tenant policy is multipart/form-data with a \"component\" part (the .wasm), \
                 a \"policy_config\" part (a JSON object), or both";
    let boundary = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| multer::parse_boundary(v).ok())
        .ok_or_else(|| ApiError::invalid(usage))?;
    let limits = &app.config.limits;
    let body = read_bytes(
        req.into_body(),
        limits.max_component_bytes + limits.max_json_bytes,
    )
    .await?;
    let whole = futures_util::stream::once(async { Ok::<_, std::convert::Infallible>(body) });
    let mut multipart = multer::Multipart::new(whole, boundary);
    let (mut wasm, mut config) = (None, None);
    let bad = |e: multer::Error| ApiError::invalid(format!("{usage}: {e}"));
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        match field.name() {
            Some("component") => {
                let bytes = field.bytes().await.map_err(bad)?;
                if bytes.len() > limits.max_component_bytes {
                    return Err(ApiError::new(
                        super::error::Code::PayloadTooLarge,
                        format!(
                            "a component is limited to {} bytes",
                            limits.max_component_bytes
                        ),
                    ));
                }
                wasm = Some(bytes.to_vec());
            }
            Some("policy_config") => {
                let text = field.text().await.map_err(bad)?;
                let value: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| ApiError::invalid(format!("policy_config is not JSON: {e}")))?;
                if !value.is_object() {
                    return Err(ApiError::invalid("policy_config must be a JSON object"));
                }
                config = Some(value);
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown part {other:?}: {usage}"
                )));
            }
        }
    }
    if wasm.is_none() && config.is_none() {
        return Err(ApiError::invalid(usage));
    }
    Ok((wasm, config))
}
