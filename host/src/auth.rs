//! Bearer tokens → tenants. Tokens are kept only as SHA-256 digests, so the map
//! lookup reveals nothing through timing and no token sits in memory in clear.

use crate::config::Config;
use http::HeaderMap;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The tenant of a config without tenants.
pub const DEFAULT_TENANT: &str = "default";

/// Why a request is not authenticated; the message is for the client.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unauthorized(pub &'static str);

const MISSING: Unauthorized = Unauthorized("missing bearer token (Authorization: Bearer <token>)");

pub struct Tenants {
    by_token: HashMap<[u8; 32], String>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tenants {
    /// The configured tenants; without any, the single tenant `default` whose token
    /// is `env_token` or, failing that, a new random one that is returned to print.
    pub fn new(config: &Config, env_token: Option<String>) -> (Tenants, Option<String>) {
        let mut by_token = HashMap::new();
        for tenant in &config.tenants {
            for token in &tenant.tokens {
                by_token.insert(digest(token), tenant.name.clone());
            }
        }
        let mut generated = None;
        if config.tenants.is_empty() {
            let token = env_token.filter(|t| !t.is_empty()).unwrap_or_else(|| {
                let token = format!("rsh_{}", hex::encode(rand::random::<[u8; 24]>()));
                generated = Some(token.clone());
                token
            });
            by_token.insert(digest(&token), DEFAULT_TENANT.to_owned());
        }
        (Tenants { by_token }, generated)
    }

    /// The tenant of the request's `Authorization: Bearer` token (or, for WebSocket
    /// upgrades, a `token` query parameter passed as `query_token`).
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Result<&str, Unauthorized> {
        let token = bearer(headers).or(query_token).ok_or(MISSING)?;
        self.by_token
            .get(&digest(token))
            .map(String::as_str)
            .ok_or(Unauthorized("unknown token"))
    }
}

/// The token of an `Authorization: Bearer` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
}

/// The tokens of an operator endpoint (the admin API, `/metrics`); none: the
/// endpoint is off.
pub struct OperatorTokens {
    digests: std::collections::HashSet<[u8; 32]>,
    /// The refusal of any other token.
    refusal: &'static str,
}

impl OperatorTokens {
    /// The admin API's (`[admin] tokens`).
    pub fn admin(config: &Config) -> OperatorTokens {
        OperatorTokens::new(&config.admin.tokens, "not an admin token")
    }

    /// `/metrics`'s (`[metrics] tokens`, and the admin tokens when
    /// `[metrics] admin_tokens` says so).
    pub fn metrics(config: &Config) -> OperatorTokens {
        let admin = config
            .admin
            .tokens
            .iter()
            .filter(|_| config.metrics.admin_tokens);
        let tokens: Vec<String> = config.metrics.tokens.iter().chain(admin).cloned().collect();
        OperatorTokens::new(&tokens, "not a metrics token")
    }

    fn new(tokens: &[String], refusal: &'static str) -> OperatorTokens {
        OperatorTokens {
            digests: tokens.iter().map(|t| digest(t)).collect(),
            refusal,
        }
    }

    pub fn enabled(&self) -> bool {
        !self.digests.is_empty()
    }

    /// Accepts only one of these tokens: a tenant's is as unknown here as any other.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<(), Unauthorized> {
        let token = bearer(headers).ok_or(MISSING)?;
        if self.digests.contains(&digest(token)) {
            Ok(())
        } else {
            Err(Unauthorized(self.refusal))
        }
    }
}
