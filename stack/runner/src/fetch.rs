//! Outbound `fetch` for workers. The host is resolved first and every address is checked
//! against the blocked ranges (loopback, private, link-local incl. cloud metadata, CGNAT,
//! unspecified, multicast, broadcast, IPv6 unique-local and link-local, IPv4-mapped forms);
//! the connection then goes to that checked address, so a hostname cannot slip through and
//! DNS cannot be asked twice (no rebinding). `https://` runs TLS (rustls, Mozilla's roots from
//! `webpki-roots`, the host name checked against the certificate) over that same connection.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::ServerName};

use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};

/// Which otherwise-blocked addresses a deployment allows (from `stack.toml`).
#[derive(Debug, Clone, Default)]
pub struct FetchPolicy {
    pub allow: Vec<IpAddr>,
    pub timeout: Duration,
    pub max_response: usize,
    /// TLS settings with extra trusted roots ([`tls_config_with`]); None = Mozilla's roots only.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

#[derive(Debug, Deserialize)]
pub struct FetchRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// `body` is latin1, one character per byte ([`crate::body`]).
    #[serde(default)]
    pub binary: bool,
}

#[derive(Debug, Serialize)]
pub struct FetchResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// `body` is latin1, one character per byte: the response was not UTF-8.
    pub binary: bool,
    pub url: String,
}

/// Is `ip` in a range a worker may not reach by default?
pub fn is_blocked(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return blocked_v4(v4);
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7 (incl. fd00:ec2::254)
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] == 0x64 && s[1] == 0xff9b) // NAT64 64:ff9b::/96 can embed private v4
                || (s[0] == 0x2002) // 6to4 can embed private v4
                || v6 == Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1)
        }
    }
}

fn blocked_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254.0.0/16, incl. 169.254.169.254 metadata
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // CGNAT 100.64.0.0/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || o[0] >= 240 // reserved
}

/// Perform one request under `policy`. Errors are messages safe to show to the worker.
pub async fn fetch(policy: &FetchPolicy, req: FetchRequest) -> Result<FetchResponse, String> {
    let url = url::Url::parse(&req.url).map_err(|e| format!("invalid URL {}: {e}", req.url))?;
    let tls = match url.scheme() {
        "http" => false,
        "https" => true,
        s => return Err(format!("fetch: unsupported scheme {s}:")),
    };
    let host = url.host_str().ok_or("fetch: URL has no host")?.to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(policy.timeout, tokio::net::lookup_host((bare, port)))
            .await
            .map_err(|_| format!("fetch: resolving {host} timed out"))?
            .map_err(|e| format!("fetch: cannot resolve {host}: {e}"))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(format!("fetch: {host} has no address"));
    }
    // Every address must pass, not just the first: otherwise the answer order decides.
    if let Some(bad) = addrs
        .iter()
        .find(|a| is_blocked(a.ip()) && !policy.allow.contains(&a.ip()))
    {
        return Err(format!(
            "fetch to {host} refused: it resolves to {} (loopback, private, link-local or metadata addresses are blocked)",
            bad.ip()
        ));
    }
    let addr = addrs[0];
    let work = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("fetch: connecting to {host}: {e}"))?;
        let mut sender = if tls {
            let name = ServerName::try_from(bare.to_string())
                .map_err(|e| format!("fetch: {host} is not a valid TLS server name: {e}"))?;
            let cfg = match &policy.tls {
                Some(c) => c.clone(),
                None => tls_config()?,
            };
            let stream = TlsConnector::from(cfg)
                .connect(name, stream)
                .await
                .map_err(|e| format!("fetch: TLS with {host}: {e}"))?;
            handshake(stream, &host).await?
        } else {
            handshake(stream, &host).await?
        };
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let mut b = hyper::Request::builder()
            .method(req.method.as_str())
            .uri(path);
        let mut has_host = false;
        for (k, v) in &req.headers {
            has_host |= k.eq_ignore_ascii_case("host");
            b = b.header(k.as_str(), v.as_str());
        }
        if !has_host {
            let h = match url.port() {
                Some(p) => format!("{host}:{p}"),
                None => host.clone(),
            };
            b = b.header("host", h);
        }
        let body = crate::body::from_js_string(req.body.clone().unwrap_or_default(), req.binary)
            .map_err(|e| format!("fetch: {e}"))?;
        let request = b
            .body(Full::new(bytes::Bytes::from(body)))
            .map_err(|e| format!("fetch: bad request: {e}"))?;
        let resp = sender
            .send_request(request)
            .await
            .map_err(|e| format!("fetch: {host}: {e}"))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let body = Limited::new(resp.into_body(), policy.max_response)
            .collect()
            .await
            .map_err(|e| format!("fetch: reading the response from {host}: {e}"))?
            .to_bytes();
        let (body, binary) = crate::body::to_js_string(Vec::from(body));
        Ok(FetchResponse {
            status,
            headers,
            body,
            binary,
            url: req.url.clone(),
        })
    };
    tokio::time::timeout(policy.timeout, work)
        .await
        .map_err(|_| format!("fetch: {host} did not answer within {:?}", policy.timeout))?
}

/// HTTP/1.1 over `io`; the connection task runs until the response is read.
async fn handshake<T>(
    io: T,
    host: &str,
) -> Result<hyper::client::conn::http1::SendRequest<Full<bytes::Bytes>>, String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("fetch: HTTP handshake with {host}: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

/// One rustls client configuration for the process: ring, Mozilla's roots, HTTP/1.1 by ALPN.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG.get_or_init(|| tls_config_with(b"")).clone()
}

/// Mozilla's roots plus the certificates of `extra_pem` (`RUNNER_FETCH_CA_FILE`: e.g. the CA of
/// an egress proxy that re-signs TLS).
pub fn tls_config_with(extra_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for cert in CertificateDer::pem_slice_iter(extra_pem) {
        let cert = cert.map_err(|e| format!("reading the extra CA certificates: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("adding an extra CA certificate: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("fetch: setting up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::is_blocked;

    #[test]
    fn blocked_ranges() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_blocked(ip.parse().unwrap()), "{ip} must be blocked");
        }
        for ip in ["1.1.1.1", "93.184.216.34", "2606:4700::1111"] {
            assert!(!is_blocked(ip.parse().unwrap()), "{ip} must be allowed");
        }
    }
}
