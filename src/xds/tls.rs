//! xDS over TLS and mutual TLS (rustls, ring), with certificates that rotate without a restart.
//!
//! The TLS handshake runs here, not in tonic's transport, because tonic's `ServerTlsConfig` takes its
//! certificate and CA once. The rustls config instead asks [`Shared`] for the current certificate on every
//! handshake ([`ResolvesServerCert`]) and verifies client certificates with the current CA
//! ([`ClientCertVerifier`]); a watcher on the files swaps both when they change. Established connections
//! are not touched, so connected Envoys keep their streams through a rotation.
//!
//! Every refused handshake is logged with its reason and counted in [`TlsCounters`], which the admin
//! endpoint's `/metrics` shows.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

use super::connections::{Connections, Tracked};
use super::identity::IdentityPolicy;
pub use super::refusal::{Refusal, TlsCounters};
use crate::watcher::{DirectoryWatcher, WatchError};

/// A client that opens a connection and sends nothing must not hold a task forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Certificate files are written one after the other (certificate, then key); reading them once the
/// directory is quiet avoids pairing a new certificate with the old key.
const RELOAD_DEBOUNCE: Duration = Duration::from_millis(100);

/// Where Switchyard's TLS files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// Switchyard's certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The CA (PEM, one or more certificates) that signs proxies' certificates. With it, every proxy must
    /// present a certificate, and its SPIFFE ID must match the node it claims; without it, TLS only
    /// encrypts and authenticates the server.
    pub client_ca: Option<PathBuf>,
    /// The trust domain of the SPIFFE IDs accepted from proxies.
    pub trust_domain: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{} holds no PEM certificate", .0.display())]
    NoCertificate(PathBuf),
    #[error("{}: not a PEM private key: {reason}", path.display())]
    BadKey { path: PathBuf, reason: String },
    #[error("{}: {reason}", path.display())]
    BadCertificate { path: PathBuf, reason: String },
    #[error("the key {} does not go with the certificate {}: {reason}", key.display(), cert.display())]
    KeyMismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("the certificate {} is not valid now (valid from {not_before} to {not_after})", path.display())]
    NotValidNow {
        path: PathBuf,
        not_before: String,
        not_after: String,
    },
    #[error("the client CA {}: {reason}", path.display())]
    ClientCa { path: PathBuf, reason: String },
    #[error("cannot build the TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error(transparent)]
    Watch(#[from] WatchError),
}

/// One reading of the TLS files.
struct Loaded {
    key: Arc<CertifiedKey>,
    /// `None` without a client CA.
    verifier: Option<Arc<dyn ClientCertVerifier>>,
    /// Everything read, to tell a rotation from a rewrite of the same content.
    content: Vec<Vec<u8>>,
    not_after: String,
}

struct Shared {
    options: TlsOptions,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<Loaded>>,
    counters: Arc<TlsCounters>,
}

impl Shared {
    fn current(&self) -> Arc<Loaded> {
        // A panic while swapping leaves the previous, complete value behind: keep serving it.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdsTls")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Switchyard's TLS: the current certificate and client CA, the acceptor that uses them, and their reload.
/// Cloning shares it.
#[derive(Clone, Debug)]
pub struct XdsTls {
    shared: Arc<Shared>,
}

impl XdsTls {
    /// Reads the files; fails if they are unusable now (missing, mismatched, expired).
    pub fn load(options: TlsOptions, counters: Arc<TlsCounters>) -> Result<XdsTls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let loaded = load(&options, &provider)?;
        tracing::info!(
            cert = %options.cert.display(),
            not_after = %loaded.not_after,
            mutual = options.client_ca.is_some(),
            "xDS TLS certificate loaded"
        );
        Ok(XdsTls {
            shared: Arc::new(Shared {
                options,
                provider,
                current: RwLock::new(Arc::new(loaded)),
                counters,
            }),
        })
    }

    pub fn options(&self) -> &TlsOptions {
        &self.shared.options
    }

    pub fn counters(&self) -> &Arc<TlsCounters> {
        &self.shared.counters
    }

    /// What the xDS server requires of a stream: a matching SPIFFE ID with a client CA, nothing without.
    pub fn identity_policy(&self) -> IdentityPolicy {
        if self.shared.options.client_ca.is_some() {
            IdentityPolicy::Spiffe {
                trust_domain: self.shared.options.trust_domain.clone(),
                counters: self.shared.counters.clone(),
            }
        } else {
            IdentityPolicy::Open
        }
    }

    /// The leaf certificate new connections are served.
    pub fn certificate(&self) -> CertificateDer<'static> {
        // `load` refuses an empty chain, so the leaf exists.
        self.shared
            .current()
            .key
            .cert
            .first()
            .cloned()
            .unwrap_or_else(|| CertificateDer::from(Vec::new()))
    }

    /// Reads the files again. A complete, valid and different set replaces the current one for every
    /// handshake from now on (`Ok(true)`); anything else keeps the current one, and says why.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let shared = &self.shared;
        let counters = &shared.counters;
        match load(&shared.options, &shared.provider) {
            Ok(loaded) => {
                if loaded.content == shared.current().content {
                    return Ok(false);
                }
                let not_after = loaded.not_after.clone();
                *shared.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded);
                counters.reloads_accepted.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%not_after, "xDS TLS certificate reloaded; open streams continue");
                Ok(true)
            }
            Err(error) => {
                counters.reloads_rejected.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, "xDS TLS files not reloaded; still serving the previous ones");
                Err(error)
            }
        }
    }

    /// Reloads whenever a file's directory changes, until the task is aborted.
    pub fn watch(&self) -> Result<JoinHandle<()>, TlsError> {
        let options = &self.shared.options;
        let files: Vec<&Path> = [Some(&options.cert), Some(&options.key)]
            .into_iter()
            .chain([options.client_ca.as_ref()])
            .flatten()
            .map(PathBuf::as_path)
            .collect();
        let mut watcher = DirectoryWatcher::parents_of(&files, RELOAD_DEBOUNCE)?;
        let tls = self.clone();
        Ok(tokio::spawn(async move {
            while watcher.settled().await {
                // The outcome is logged and counted inside.
                let _ = tls.reload();
            }
        }))
    }

    fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let builder = ServerConfig::builder_with_provider(self.shared.provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = if self.shared.options.client_ca.is_some() {
            builder.with_client_cert_verifier(Arc::new(Verifier(self.shared.clone())))
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder.with_cert_resolver(Arc::new(Resolver(self.shared.clone())));
        // gRPC is HTTP/2; Envoy's bootstrap offers h2 by ALPN.
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// TLS connections accepted on `listener` (within the limits `connections` keeps), for tonic's
    /// `serve_with_incoming`. Each handshake runs in a task of its own, so a slow client delays nobody;
    /// refused handshakes are logged, counted and never reach tonic. The accept loop ends when the returned
    /// stream is dropped.
    pub fn incoming(
        &self,
        listener: TcpListener,
        connections: &Connections,
    ) -> Result<ReceiverStream<io::Result<TlsStream<Tracked>>>, TlsError> {
        let acceptor = TlsAcceptor::from(self.server_config()?);
        let counters = self.shared.counters.clone();
        Ok(connections.accept(listener, move |tcp, peer, tx| {
            let (acceptor, counters) = (acceptor.clone(), counters.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(error)) => {
                        refuse(&counters, peer, Refusal::of_handshake(&error), &error)
                    }
                    Err(_) => refuse(&counters, peer, Refusal::HandshakeTimeout, &"no handshake"),
                }
            });
        }))
    }
}

fn refuse(
    counters: &TlsCounters,
    peer: SocketAddr,
    reason: Refusal,
    error: &dyn std::fmt::Display,
) {
    counters.refused(reason);
    let hint = match reason {
        Refusal::ServerCertificateRefused => {
            " (the client does not trust Switchyard's certificate: is it signed by the CA the proxy trusts, for the name it expects?)"
        }
        Refusal::UnknownIssuer => " (the client certificate is not signed by --client-ca)",
        Refusal::NoClientCertificate => {
            " (mutual TLS: a proxy must present a certificate signed by --client-ca)"
        }
        _ => "",
    };
    tracing::warn!(%peer, reason = reason.label(), "xDS TLS handshake refused: {error}{hint}");
}

/// Hands rustls the current certificate on every handshake.
#[derive(Debug)]
struct Resolver(Arc<Shared>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current().key.clone())
    }
}

/// Verifies client certificates against the current CA.
#[derive(Debug)]
struct Verifier(Arc<Shared>);

impl Verifier {
    fn current(&self) -> Result<Arc<dyn ClientCertVerifier>, rustls::Error> {
        self.0
            .current()
            .verifier
            .clone()
            .ok_or_else(|| rustls::Error::General("no client CA is loaded".into()))
    }
}

impl ClientCertVerifier for Verifier {
    /// The hints would have to borrow from the current CA, which a reload may replace mid-handshake. They
    /// only help a client choose among several certificates; a proxy has one.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current()?
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current()?.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0
            .provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate in a PEM file, in order.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    parse_certificates(path, &read(path)?)
}

fn parse_certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_path_buf()));
    }
    Ok(certs)
}

fn load(options: &TlsOptions, provider: &Arc<CryptoProvider>) -> Result<Loaded, TlsError> {
    let cert_pem = read(&options.cert)?;
    let key_pem = read(&options.key)?;
    let chain = parse_certificates(&options.cert, &cert_pem)?;
    let not_after = check_validity(&options.cert, &chain[0])?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::BadKey {
        path: options.key.clone(),
        reason: e.to_string(),
    })?;
    let key = CertifiedKey::from_der(chain, key, provider).map_err(|e| TlsError::KeyMismatch {
        cert: options.cert.clone(),
        key: options.key.clone(),
        reason: e.to_string(),
    })?;
    let mut content = vec![cert_pem, key_pem];
    let verifier = match &options.client_ca {
        None => None,
        Some(path) => {
            let ca_pem = read(path)?;
            let mut roots = RootCertStore::empty();
            for cert in parse_certificates(path, &ca_pem)? {
                roots.add(cert).map_err(|e| TlsError::ClientCa {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            }
            content.push(ca_pem);
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| TlsError::ClientCa {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
            Some(verifier)
        }
    };
    Ok(Loaded {
        key: Arc::new(key),
        verifier,
        content,
        not_after,
    })
}

/// Refuses a certificate outside its validity period (serving it would make every proxy refuse
/// Switchyard); returns its end of validity.
fn check_validity(path: &Path, cert: &CertificateDer<'_>) -> Result<String, TlsError> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert).map_err(|e| TlsError::BadCertificate {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let validity = parsed.validity();
    if !validity.is_valid() {
        return Err(TlsError::NotValidNow {
            path: path.to_path_buf(),
            not_before: validity.not_before.to_string(),
            not_after: validity.not_after.to_string(),
        });
    }
    Ok(validity.not_after.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_its_own_counter_and_label() {
        let counters = TlsCounters::default();
        for (i, reason) in Refusal::ALL.into_iter().enumerate() {
            // The counters are indexed by discriminant: ALL must list the variants in declaration order.
            assert_eq!(reason as usize, i);
            counters.refused(reason);
            assert_eq!(counters.get(reason), 1);
        }
        let mut labels: Vec<&str> = Refusal::ALL.iter().map(|r| r.label()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), Refusal::ALL.len());
    }
}
