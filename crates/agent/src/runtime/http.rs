//! The controller client: plain HTTP/1.1 through hyper-util's pooled client, with the agent
//! secret as a bearer token on every request.

use core::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::{
    Method, Request, StatusCode,
    body::{Bytes, Incoming},
    header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue},
};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::Value;

/// The longest error body kept for a message.
const ERROR_BODY_CHARS: usize = 300;

/// Why a request to the controller failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The request could not be made or its answer not read.
    #[error("request failed: {}", chain(.0))]
    Request(hyper_util::client::legacy::Error),
    /// The body broke off.
    #[error("reading the answer: {}", chain(.0))]
    Body(hyper::Error),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The agent secret was refused.
    #[error("401 Unauthorized: the controller refused the agent token (see --token-file)")]
    Unauthorized,
    /// Any other status than the one expected.
    #[error("{status}: {body}")]
    Status {
        /// The status.
        status: StatusCode,
        /// The start of the body.
        body: String,
    },
    /// The URL built for the request is invalid.
    #[error("invalid URL {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

// The causes are part of the message (hyper's own messages are terse: "client error
// (Connect)"), so they are not also sources: a `{:#}` chain would repeat them.
impl From<hyper_util::client::legacy::Error> for HttpError {
    fn from(err: hyper_util::client::legacy::Error) -> Self {
        Self::Request(err)
    }
}

impl From<hyper::Error> for HttpError {
    fn from(err: hyper::Error) -> Self {
        Self::Body(err)
    }
}

/// An error and its causes, `: `-separated.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        // Some errors repeat their cause in their own message; say it once.
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}

/// A client of one controller.
#[derive(Debug, Clone)]
pub(crate) struct Controller {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    authorization: HeaderValue,
    timeout: Duration,
}

impl Controller {
    /// A client of the controller at `base` (`http://host:port`, maybe with a path prefix).
    pub(crate) fn new(base: &str, token: &str, timeout: Duration) -> Result<Self, HttpError> {
        let base = base.trim_end_matches('/').to_owned();
        let url = |reason: &str| HttpError::Url {
            url: base.clone(),
            reason: reason.to_owned(),
        };
        if !base.starts_with("http://") {
            return Err(url("only http:// is supported"));
        }
        base.parse::<hyper::Uri>()
            .map_err(|err| url(&err.to_string()))?;
        let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| url("the token is not a valid header value"))?;
        authorization.set_sensitive(true);
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            client,
            base,
            authorization,
            timeout,
        })
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, HttpError> {
        let url = format!("{}{path}", self.base);
        let uri = url.parse::<hyper::Uri>().map_err(|err| HttpError::Url {
            url: url.clone(),
            reason: err.to_string(),
        })?;
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(AUTHORIZATION, self.authorization.clone());
        if !body.is_empty() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        builder.body(Full::new(body)).map_err(|err| HttpError::Url {
            url,
            reason: err.to_string(),
        })
    }

    /// POSTs `body` to `path` and returns the answer's body (a 2xx is required).
    pub(crate) async fn post_json(&self, path: &str, body: &Value) -> Result<Bytes, HttpError> {
        let request = self.request(Method::POST, path, Bytes::from(body.to_string()))?;
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            check(status, &body)?;
            Ok(body)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| HttpError::Timeout(self.timeout))?
    }

    /// Opens the watch stream of `host` from `since`; the body is the NDJSON stream.
    pub(crate) async fn watch(&self, host: &str, since: u64) -> Result<Incoming, HttpError> {
        let host: String = form_urlencoded::byte_serialize(host.as_bytes()).collect();
        let path = format!("/weft/v1/watch?host={host}&since={since}");
        let request = self.request(Method::GET, &path, Bytes::new())?;
        let response = tokio::time::timeout(self.timeout, self.client.request(request))
            .await
            .map_err(|_| HttpError::Timeout(self.timeout))??;
        let status = response.status();
        if status != StatusCode::OK {
            let body = tokio::time::timeout(self.timeout, response.into_body().collect())
                .await
                .ok()
                .and_then(Result::ok)
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            check(status, &body)?;
            return Err(HttpError::Status {
                status,
                body: "expected 200 and a stream".to_owned(),
            });
        }
        Ok(response.into_body())
    }
}

fn check(status: StatusCode, body: &[u8]) -> Result<(), HttpError> {
    if status.is_success() {
        return Ok(());
    }
    if status == StatusCode::UNAUTHORIZED {
        return Err(HttpError::Unauthorized);
    }
    let text = String::from_utf8_lossy(body);
    Err(HttpError::Status {
        status,
        body: text.chars().take(ERROR_BODY_CHARS).collect(),
    })
}
