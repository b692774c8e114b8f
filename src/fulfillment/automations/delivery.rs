//! Sending one attempt of a delivery over HTTP: the headers a subscriber
//! checks, a bounded read of the answer, and the refusal of targets inside
//! private networks (so a rule cannot be used to reach the gateway's own
//! network or a cloud metadata service).

use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::{redirect, Client, Response};

use crate::config::{AutomationSettings, DeliverySettings};
use crate::domain::{Delivery, FailureReason};

/// Most bytes of an answer read: enough to keep its start for ops, never
/// so much that a subscriber can make the gateway buffer without end.
const ANSWER_READ_LIMIT: usize = 64 * 1024;
/// How much of a failed answer's body an attempt keeps.
const DETAIL_LIMIT: usize = 256;

/// Sends delivery attempts; cheap to clone, connections are pooled.
#[derive(Clone)]
pub struct Courier {
    client: Client,
    allow_private_targets: bool,
    /// Whether deliveries go through `delivery.proxy`, which resolves the
    /// target itself: the target is then resolved and checked here first.
    via_proxy: bool,
}

/// Why an attempt did not deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: FailureReason,
    pub status: Option<u16>,
    pub detail: String,
    /// How long the subscriber asked us to wait (`Retry-After`).
    pub retry_after: Option<Duration>,
}

impl Failure {
    fn new(reason: FailureReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            status: None,
            detail: detail.into(),
            retry_after: None,
        }
    }
}

/// A target refused because it resolves into a private network.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {address}, a loopback, private, link-local or metadata address; set delivery.allow_private_targets to allow it")]
struct RefusedTarget {
    host: String,
    address: IpAddr,
}

impl Courier {
    /// A courier with the delivery settings' timeout and target policy.
    pub fn new(settings: &DeliverySettings) -> Result<Self, reqwest::Error> {
        let mut builder = Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            // A redirect could lead anywhere, past the target check.
            .redirect(redirect::Policy::none())
            .user_agent(concat!("shipgate/", env!("CARGO_PKG_VERSION")));
        // Only the configured proxy, never HTTP_PROXY and the like from the
        // environment: one would carry deliveries past the target check.
        builder = match &settings.proxy {
            Some(proxy) => builder.proxy(reqwest::Proxy::all(proxy.clone())?),
            None => builder.no_proxy(),
        };
        // The resolver resolves the proxy's name when there is one; the
        // proxy is configured, so trusted, wherever it is.
        if !settings.allow_private_targets && settings.proxy.is_none() {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        Ok(Self {
            client: builder.build()?,
            allow_private_targets: settings.allow_private_targets,
            via_proxy: settings.proxy.is_some(),
        })
    }

    /// Sends one attempt of `delivery` to `rule`'s target at `now`;
    /// answers the 2xx status, or why it failed.
    pub async fn send(
        &self,
        rule: &AutomationSettings,
        delivery: &Delivery,
        now: DateTime<Utc>,
    ) -> Result<u16, Failure> {
        if !self.allow_private_targets {
            self.check_literal_target(rule)?;
            if self.via_proxy {
                check_resolved_target(rule).await?;
            }
        }
        let mut request = self
            .client
            .post(rule.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", &delivery.id);
        if let Some(token) = &rule.bearer_token {
            request = request.bearer_auth(token.expose());
        }
        if let Some(secret) = &rule.signing_secret {
            let timestamp = now.timestamp();
            request = request
                .header("webhook-timestamp", timestamp.to_string())
                .header(
                    "webhook-signature",
                    secret.sign(&delivery.id, timestamp, delivery.body.as_bytes()),
                );
        }
        let response = request
            .body(delivery.body.clone())
            .send()
            .await
            .map_err(classify)?;
        let status = response.status();
        let retry_after = retry_after(&response, now);
        let answer = read_capped(response).await.map_err(classify)?;
        if status.is_success() {
            return Ok(status.as_u16());
        }
        Err(Failure {
            reason: FailureReason::HttpStatus,
            status: Some(status.as_u16()),
            detail: format!("HTTP {status}: {}", excerpt(&answer)),
            retry_after,
        })
    }

    /// Names that resolve are checked by [`PublicOnly`]; an address
    /// written in the URL never reaches a resolver, so it is checked here.
    fn check_literal_target(&self, rule: &AutomationSettings) -> Result<(), Failure> {
        let host = rule.url.host_str().unwrap_or_default();
        let Ok(address) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        else {
            return Ok(());
        };
        if is_private(address) {
            let refused = RefusedTarget {
                host: address.to_string(),
                address,
            };
            return Err(Failure::new(
                FailureReason::RefusedTarget,
                refused.to_string(),
            ));
        }
        Ok(())
    }
}

/// Through a proxy, the target's name never reaches [`PublicOnly`]: it is
/// resolved here and refused as [`PublicOnly`] would. The proxy resolves
/// it again, so this narrows, but cannot close, a DNS-rebinding window.
async fn check_resolved_target(rule: &AutomationSettings) -> Result<(), Failure> {
    let Some(host) = rule.url.host_str() else {
        return Ok(());
    };
    if host.starts_with('[') || host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let port = rule.url.port_or_known_default().unwrap_or(80);
    let addresses = tokio::net::lookup_host((host, port)).await.map_err(|e| {
        Failure::new(
            FailureReason::ConnectionFailed,
            format!("{host} does not resolve: {e}"),
        )
    })?;
    for address in addresses {
        if is_private(address.ip()) {
            let refused = RefusedTarget {
                host: host.to_owned(),
                address: address.ip(),
            };
            return Err(Failure::new(
                FailureReason::RefusedTarget,
                refused.to_string(),
            ));
        }
    }
    Ok(())
}

/// Resolves names and refuses a name if ANY of its addresses is private:
/// checking only the first would let a name list a public address and a
/// private one. The connection then uses exactly the checked addresses,
/// so a second lookup cannot swap them (DNS rebinding).
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(private) = addresses.iter().find(|a| is_private(a.ip())) {
                return Err(Box::new(RefusedTarget {
                    host,
                    address: private.ip(),
                }) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

/// Whether an address is loopback, private, link-local, a cloud metadata
/// service, or otherwise not a public internet host.
pub fn is_private(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_v4(v4);
            }
            let s = v6.segments();
            let embedded_v4 = || {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                Ipv4Addr::new(a, b, c, d)
            };
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // unique local (fc00::/7), which holds AWS's fd00:ec2::254
                || s[0] & 0xfe00 == 0xfc00
                // link-local (fe80::/10) and the old site-local (fec0::/10)
                || s[0] & 0xffc0 == 0xfe80
                || s[0] & 0xffc0 == 0xfec0
                // documentation (2001:db8::/32)
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                // NAT64 (64:ff9b::/96) and IPv4-compatible (::/96) wrap a v4
                || (s[0] == 0x0064 && s[1] == 0xff9b && s[2..6] == [0; 4]
                    && is_private_v4(embedded_v4()))
                || (s[..6] == [0; 6] && is_private_v4(embedded_v4()))
        }
    }
}

fn is_private_v4(v4: Ipv4Addr) -> bool {
    let [a, b, c, d] = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        // link-local 169.254/16: AWS, GCP and Azure metadata live here
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || a == 0
        // shared address space 100.64/10 (carrier NAT; Alibaba's metadata)
        || (a == 100 && b & 0xc0 == 64)
        // IETF protocol assignments 192.0.0/24
        || (a == 192 && b == 0 && c == 0)
        // benchmarking 198.18/15
        || (a == 198 && b & 0xfe == 18)
        // reserved 240/4
        || a >= 240
        // Azure's platform endpoint
        || [a, b, c, d] == [168, 63, 129, 16]
}

/// Reads at most [`ANSWER_READ_LIMIT`] bytes of the answer.
async fn read_capped(mut response: Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut answer = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = ANSWER_READ_LIMIT - answer.len();
        answer.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if answer.len() >= ANSWER_READ_LIMIT {
            break;
        }
    }
    Ok(answer)
}

/// The start of an answer's body, as text, for the attempt's record.
fn excerpt(answer: &[u8]) -> String {
    let text = String::from_utf8_lossy(&answer[..answer.len().min(DETAIL_LIMIT)]);
    let text = text.trim();
    if text.is_empty() {
        "(empty body)".into()
    } else {
        text.to_owned()
    }
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(response: &Response, now: DateTime<Utc>) -> Option<Duration> {
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at: DateTime<Utc> = httpdate::parse_http_date(value).ok()?.into();
    (at - now).to_std().ok()
}

/// Maps a transport error to the reason ops filter by. The URL is left
/// out of the detail: it may carry credentials.
fn classify(error: reqwest::Error) -> Failure {
    let error = error.without_url();
    if let Some(refused) = causes(&error).find_map(|e| e.downcast_ref::<RefusedTarget>()) {
        return Failure::new(FailureReason::RefusedTarget, refused.to_string());
    }
    if error.is_timeout() {
        return Failure::new(
            FailureReason::Timeout,
            "no complete answer within delivery.timeout",
        );
    }
    let connection_refused = causes(&error).any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
    });
    let reason = if connection_refused {
        FailureReason::ConnectionRefused
    } else {
        FailureReason::ConnectionFailed
    };
    Failure::new(reason, chain(&error))
}

/// What caused `error`, nearest first.
fn causes(error: &reqwest::Error) -> impl Iterator<Item = &(dyn StdError + 'static)> {
    let mut next = error.source();
    std::iter::from_fn(move || {
        let current = next?;
        next = current.source();
        Some(current)
    })
}

/// An error and its causes on one line, each said once.
fn chain(error: &reqwest::Error) -> String {
    let mut parts = vec![error.to_string()];
    for cause in causes(error) {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_private() {
        for address in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "168.63.129.16",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "::127.0.0.1",
        ] {
            assert!(is_private(address.parse().unwrap()), "{address}");
        }
    }

    #[test]
    fn public_addresses_are_not_private() {
        for address in [
            "93.184.215.14",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(!is_private(address.parse().unwrap()), "{address}");
        }
    }
}
