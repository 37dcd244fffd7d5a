//! The other runners, and the one way this runner asks them something: a `GET`
//! carrying the caller's own credentials, so that a peer answers exactly what
//! the caller may see there.

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use std::time::Duration;

/// A runner as this one reaches it.
#[derive(Debug, Clone)]
pub struct Peer {
    pub name: String,
    pub tag: String,
    /// `host:port`, for the connection and the `Host` header.
    pub authority: String,
}

/// A peer that did not give an answer.
#[derive(Debug, thiserror::Error)]
#[error("runner {runner} is unavailable: {reason}")]
pub struct Unavailable {
    pub runner: String,
    pub reason: String,
}

impl Peer {
    /// A runner from its config entry: a base URL `http://host:port`.
    pub fn parse(name: &str, url: &str) -> Result<Peer, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("{url:?} must start with http://"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(format!(
                "{url:?} must be a base URL, without a path or query"
            ));
        }
        let authority = uri
            .authority()
            .filter(|a| !a.as_str().contains('@'))
            .ok_or_else(|| format!("{url:?} must name a host"))?;
        let port = authority.port_u16().unwrap_or(80);
        Ok(Peer {
            name: name.to_owned(),
            tag: super::ids::tag(name),
            authority: format!("{}:{port}", authority.host()),
        })
    }

    /// `GET path_and_query` on this runner as the holder of `authorization`:
    /// its status and body.
    pub async fn get(
        &self,
        path_and_query: &str,
        authorization: &HeaderValue,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), Unavailable> {
        let asked = async {
            let stream = tokio::net::TcpStream::connect(&self.authority).await?;
            stream.set_nodelay(true)?;
            let io = hyper_util::rt::TokioIo::new(stream);
            let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(connection);
            let request = Request::get(path_and_query)
                .header(header::HOST, &self.authority)
                .header(header::AUTHORIZATION, authorization)
                .body(Empty::<Bytes>::new())?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body))
        };
        let unavailable = |reason: String| Unavailable {
            runner: self.name.clone(),
            reason,
        };
        match tokio::time::timeout(timeout, asked).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(unavailable(format!("{e:#}"))),
            Err(_) => Err(unavailable(format!("no answer within {timeout:?}"))),
        }
    }
}
