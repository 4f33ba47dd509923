//! The registry's own HTTP API (distribution v2), for the two things the Docker Engine API cannot
//! tell us before a push: whether the registry answers and takes our credentials (`GET /v2/`),
//! and which image config a tag already names there (`GET /v2/NAME/manifests/TAG`, whose config
//! digest is the image id the engine reports for a local image).
//!
//! HTTP/1.1 over hyper; https through rustls with Mozilla's roots (webpki-roots), plain http for
//! loopback registries only (see `target::Registry::api_base`). Authentication follows the
//! registry's `WWW-Authenticate` challenge: `Basic` (htpasswd) or `Bearer` (a token from the
//! realm, fetched with the user's password, or with an identity token as an OAuth2 refresh
//! token). Every request has a deadline. No header holding a secret is ever printed.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Result, anyhow};
use base64::Engine as _;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, USER_AGENT, WWW_AUTHENTICATE};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio_rustls::rustls;

use super::credentials::{Credentials, Secret};
use super::target::Registry;
use crate::error::UserError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Manifests and token answers are small; anything bigger is not what we asked for.
const MAX_BODY: usize = 4 << 20;

const MANIFEST_TYPES: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json";

/// What a tag names in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// The tag does not exist.
    Absent,
    /// A single image, by its config digest (`sha256:...`).
    Image(String),
    /// Something we cannot compare with one local image (a multi-platform index, an old
    /// schema-1 manifest): described for the error message.
    Other(String),
}

/// A client for one registry, with the credentials to use and the last authorization it got.
pub struct Client {
    registry: Registry,
    base: String,
    creds: Option<Credentials>,
    auth: Mutex<Option<String>>,
}

struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Client {
    pub fn new(registry: Registry, creds: Option<Credentials>) -> Client {
        let base = registry.api_base();
        Client {
            registry,
            base,
            creds,
            auth: Mutex::new(None),
        }
    }

    /// Checks that the registry answers and accepts our credentials (when the registry asks
    /// for any: an anonymous registry, or Docker Hub's anonymous token, passes).
    pub async fn check_access(&self) -> Result<()> {
        let r = self.get_authed("/v2/", None, None).await?;
        match r.status {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND => Err(UserError::new(format!(
                "{} does not serve the registry API (GET {}/v2/ answered 404)",
                self.registry.host, self.base
            ))
            .hint("check the host and port of --registry")
            .into()),
            s => Err(anyhow!(
                "checking the registry {}: GET {}/v2/ answered {s}",
                self.registry.host,
                self.base
            )),
        }
    }

    /// What `NAMESPACE/name:tag` names in the registry.
    pub async fn remote(&self, name: &str, tag: &str) -> Result<Remote> {
        let path = self.registry.api_path(name);
        let scope = format!("repository:{path}:pull");
        let r = self
            .get_authed(
                &format!("/v2/{path}/manifests/{tag}"),
                Some(MANIFEST_TYPES),
                Some(&scope),
            )
            .await?;
        if r.status == StatusCode::NOT_FOUND {
            return Ok(Remote::Absent);
        }
        if !r.status.is_success() {
            return Err(anyhow!(
                "reading the manifest of {}:{tag} from {}: it answered {}",
                self.registry.repository(name),
                self.registry.host,
                r.status
            ));
        }
        #[derive(Deserialize)]
        struct Manifest {
            #[serde(rename = "mediaType", default)]
            media_type: Option<String>,
            #[serde(rename = "schemaVersion", default)]
            schema_version: Option<u32>,
            #[serde(default)]
            config: Option<Descriptor>,
        }
        #[derive(Deserialize)]
        struct Descriptor {
            digest: String,
        }
        let m: Manifest = serde_json::from_slice(&r.body).map_err(|e| {
            anyhow!(
                "the manifest of {}:{tag} is not JSON: {e}",
                self.registry.repository(name)
            )
        })?;
        let media_type = m
            .media_type
            .or_else(|| {
                r.headers
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
            })
            .unwrap_or_default();
        Ok(match m.config {
            Some(c) if m.schema_version == Some(2) => Remote::Image(c.digest),
            _ if media_type.contains("list") || media_type.contains("index") => {
                Remote::Other(format!("a multi-platform index ({media_type})"))
            }
            _ => Remote::Other(format!(
                "a manifest of another kind ({})",
                if media_type.is_empty() {
                    "schema 1"
                } else {
                    &media_type
                }
            )),
        })
    }

    fn unreachable(&self, url: &str, e: &dyn std::fmt::Display) -> anyhow::Error {
        UserError::new(format!(
            "cannot reach the registry {} ({url}): {e}",
            self.registry.host
        ))
        .hint(format!(
            "check that the registry is running and that --registry names its host and port (`curl {}/v2/` should answer)",
            self.base
        ))
        .into()
    }

    fn refused(&self) -> anyhow::Error {
        let (who, from) = match &self.creds {
            Some(c) if !c.username.is_empty() => (format!("user {}", c.username), c.source.clone()),
            Some(c) => ("an identity token".to_string(), c.source.clone()),
            None => (String::new(), String::new()),
        };
        let host = &self.registry.host;
        if who.is_empty() {
            return UserError::new(format!("the registry {host} requires credentials"))
                .hint(format!(
                    "log in with `docker login {host}`, or pass --username U --password-stdin (or set STACKCTL_REGISTRY_USERNAME and STACKCTL_REGISTRY_PASSWORD)"
                ))
                .into();
        }
        UserError::new(format!(
            "the registry {host} refused the credentials of {who} (from {from})"
        ))
        .hint(format!(
            "check the user name and password: `docker login {host}` stores working ones, or pass --username U --password-stdin"
        ))
        .into()
    }

    /// GET `path`, answering the registry's authentication challenge once if it makes one.
    async fn get_authed(
        &self,
        path: &str,
        accept: Option<&str>,
        scope: Option<&str>,
    ) -> Result<Response> {
        let url = format!("{}{path}", self.base);
        let cached = self.auth.lock().map(|a| a.clone()).unwrap_or(None);
        let r = self
            .send(Method::GET, &url, cached.as_deref(), accept, None)
            .await
            .map_err(|e| self.unreachable(&url, &e))?;
        if r.status != StatusCode::UNAUTHORIZED {
            return Ok(r);
        }
        let challenge = r
            .headers
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let header = self.authorize(&challenge, scope).await?;
        let r = self
            .send(Method::GET, &url, Some(&header), accept, None)
            .await
            .map_err(|e| self.unreachable(&url, &e))?;
        if r.status == StatusCode::UNAUTHORIZED {
            return Err(self.refused());
        }
        if let Ok(mut a) = self.auth.lock() {
            *a = Some(header);
        }
        Ok(r)
    }

    /// `Basic` authorization from a username and password, when those are the credentials.
    fn basic_header(&self) -> Option<String> {
        match &self.creds {
            Some(Credentials {
                username,
                secret: Secret::Password(p),
                ..
            }) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{p}"))
            )),
            _ => None,
        }
    }

    /// The `Authorization` value that answers `challenge`.
    async fn authorize(&self, challenge: &str, scope: Option<&str>) -> Result<String> {
        let (scheme, params) = parse_challenge(challenge);
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => self.basic_header().ok_or_else(|| self.refused()),
            "bearer" => {
                let realm = param(&params, "realm").ok_or_else(|| {
                    anyhow!(
                        "the registry {} asked for a bearer token but named no realm",
                        self.registry.host
                    )
                })?;
                let scope = scope.or_else(|| param(&params, "scope"));
                self.bearer_token(realm, param(&params, "service"), scope)
                    .await
                    .map(|t| format!("Bearer {t}"))
            }
            _ => Err(anyhow!(
                "the registry {} asks for an authentication scheme stackctl does not speak: {challenge:?}",
                self.registry.host
            )),
        }
    }

    /// A token from the realm: GET with the password (or anonymously), or an OAuth2 POST with
    /// an identity token.
    async fn bearer_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
    ) -> Result<String> {
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = service {
            query.push(("service", s));
        }
        if let Some(s) = scope {
            query.push(("scope", s));
        }
        let r = match &self.creds {
            Some(Credentials {
                secret: Secret::IdentityToken(t),
                ..
            }) => {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("client_id", "stackctl"),
                    ("refresh_token", t.as_str()),
                ];
                form.extend(query.iter().copied());
                self.send(Method::POST, realm, None, None, Some(encode_query(&form)))
                    .await
            }
            _ => {
                let basic = self.basic_header();
                let url = if query.is_empty() {
                    realm.to_string()
                } else {
                    let sep = if realm.contains('?') { '&' } else { '?' };
                    format!("{realm}{sep}{}", encode_query(&query))
                };
                self.send(Method::GET, &url, basic.as_deref(), None, None)
                    .await
            }
        }
        .map_err(|e| self.unreachable(realm, &e))?;
        if r.status == StatusCode::UNAUTHORIZED || r.status == StatusCode::FORBIDDEN {
            return Err(self.refused());
        }
        if !r.status.is_success() {
            return Err(anyhow!(
                "getting a token for the registry {} from {realm}: it answered {}",
                self.registry.host,
                r.status
            ));
        }
        #[derive(Deserialize)]
        struct Token {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
        }
        let t: Token = serde_json::from_slice(&r.body).map_err(|e| {
            anyhow!(
                "the token answer of {realm} for the registry {} is not JSON: {e}",
                self.registry.host
            )
        })?;
        t.token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| anyhow!("{realm} answered no token for the registry"))
    }

    /// One request on a fresh connection (the few requests we make need no pool).
    async fn send(
        &self,
        method: Method,
        url: &str,
        authorization: Option<&str>,
        accept: Option<&str>,
        form: Option<String>,
    ) -> std::result::Result<Response, String> {
        tokio::time::timeout(
            REQUEST_TIMEOUT,
            send(method, url, authorization, accept, form),
        )
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}s", REQUEST_TIMEOUT.as_secs())))
    }
}

async fn send(
    method: Method,
    url: &str,
    authorization: Option<&str>,
    accept: Option<&str>,
    form: Option<String>,
) -> std::result::Result<Response, String> {
    let uri: Uri = url.parse().map_err(|e| format!("bad URL {url}: {e}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        other => return Err(format!("unsupported URL scheme {other:?} in {url}")),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("no host in {url}"))?
        .clone();
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|_| format!("no connection within {}s", CONNECT_TIMEOUT.as_secs()))?
    .map_err(|e| e.to_string())?;
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, authority.as_str())
        .header(USER_AGENT, concat!("stackctl/", env!("CARGO_PKG_VERSION")));
    if let Some(a) = authorization {
        req = req.header(AUTHORIZATION, a);
    }
    if let Some(a) = accept {
        req = req.header(ACCEPT, a);
    }
    let body = match form {
        Some(f) => {
            req = req.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
            Full::new(Bytes::from(f))
        }
        None => Full::new(Bytes::new()),
    };
    let req = req.body(body).map_err(|e| e.to_string())?;
    let resp = if https {
        let server_name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| format!("{host} is not a TLS server name: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(tls_config()?)
            .connect(server_name, tcp)
            .await
            .map_err(|e| format!("TLS with {host}: {e}"))?;
        exchange(tls, req).await?
    } else {
        exchange(tcp, req).await?
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = http_body_util::Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    Ok(Response {
        status,
        headers,
        body,
    })
}

async fn exchange<T>(
    io: T,
    req: Request<Full<Bytes>>,
) -> std::result::Result<http::Response<hyper::body::Incoming>, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(conn);
    sender.send_request(req).await.map_err(|e| e.to_string())
}

/// One rustls configuration for the process: ring, Mozilla's roots.
fn tls_config() -> std::result::Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<std::result::Result<Arc<rustls::ClientConfig>, String>> =
        OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("setting up TLS: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(Arc::new(cfg))
        })
        .clone()
}

/// `Bearer realm="https://auth/token",service="reg",scope="repository:a:pull,push"` ->
/// ("Bearer", [(realm, ...), (service, ...), (scope, ...)]). Quoted values may hold commas.
fn parse_challenge(header: &str) -> (String, Vec<(String, String)>) {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        params.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    (scheme.to_string(), params)
}

/// URL query (and form body) encoding: every byte but RFC 3986's unreserved ones escaped.
fn encode_query(pairs: &[(&str, &str)]) -> String {
    const ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, ESCAPED).to_string();
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of a challenge's parameter `key` (keys are lower-cased by `parse_challenge`).
fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(s, "Bearer");
        assert_eq!(
            p,
            [
                ("realm".into(), "https://auth.docker.io/token".into()),
                ("service".into(), "registry.docker.io".into()),
                ("scope".into(), "repository:a/b:pull,push".into()),
            ]
        );
        let (s, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(s, "Basic");
        assert_eq!(p, [("realm".to_string(), "Registry Realm".to_string())]);
    }

    #[test]
    fn queries_encode() {
        assert_eq!(
            encode_query(&[("scope", "repository:a/b:pull"), ("service", "x y")]),
            "scope=repository%3Aa%2Fb%3Apull&service=x%20y"
        );
    }
}
