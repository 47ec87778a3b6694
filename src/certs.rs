//! A small certificate authority for xDS over mutual TLS: one CA, Switchyard's server certificate, and one
//! certificate per proxy whose URI SAN is its SPIFFE ID (see `xds::identity` and `docs/security.md`).
//!
//! The directory mirrors what Istio mounts into a pod (`/etc/certs`), one subdirectory per holder:
//!
//! ```text
//! <dir>/ca/root-cert.pem, key.pem                       the CA (its key never leaves this directory)
//! <dir>/switchyard/cert-chain.pem, key.pem, root-cert.pem   Switchyard's server certificate
//! <dir>/<name>.<namespace>/cert-chain.pem, key.pem, root-cert.pem   one proxy's
//! ```
//!
//! Directories are 0700 and keys 0600; every file is written to a temporary name and renamed into
//! place, so a reader (Switchyard's reloader, an Envoy starting) never sees half a file.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

use crate::xds::identity::SpiffeId;
use crate::xds::TlsOptions;

/// The DNS name in Switchyard's certificate, and the SNI and name Envoy's bootstraps expect.
pub const SERVER_NAME: &str = "switchyard";
pub const CERT_CHAIN: &str = "cert-chain.pem";
pub const KEY: &str = "key.pem";
pub const ROOT_CERT: &str = "root-cert.pem";

const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Issued certificates start an hour early: a clock a little behind on the verifying side must not
/// refuse a certificate minted a moment ago.
const CLOCK_SKEW: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot mint {what}: {source}")]
    Mint { what: String, source: rcgen::Error },
    #[error("the CA in {}: {reason}", dir.display())]
    BadCa { dir: PathBuf, reason: String },
    #[error("{0} is not a usable SAN: {1}")]
    BadName(String, String),
}

/// The three files one holder (Switchyard or a proxy) needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert_chain: PathBuf,
    pub key: PathBuf,
    pub root_cert: PathBuf,
}

impl CertFiles {
    fn in_dir(dir: &Path) -> CertFiles {
        CertFiles {
            cert_chain: dir.join(CERT_CHAIN),
            key: dir.join(KEY),
            root_cert: dir.join(ROOT_CERT),
        }
    }

    pub fn exist(&self) -> bool {
        [&self.cert_chain, &self.key, &self.root_cert]
            .iter()
            .all(|p| p.is_file())
    }
}

/// A certificates directory laid out as the module documentation says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertDir {
    root: PathBuf,
}

impl CertDir {
    pub fn new(root: impl Into<PathBuf>) -> CertDir {
        CertDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn ca(&self) -> CertFiles {
        let dir = self.root.join("ca");
        CertFiles {
            cert_chain: dir.join(ROOT_CERT),
            key: dir.join(KEY),
            root_cert: dir.join(ROOT_CERT),
        }
    }

    pub fn server(&self) -> CertFiles {
        CertFiles::in_dir(&self.root.join("switchyard"))
    }

    /// A proxy's files, named after its node: `<name>.<namespace>`.
    pub fn proxy(&self, namespace: &str, name: &str) -> CertFiles {
        CertFiles::in_dir(&self.root.join(format!("{name}.{namespace}")))
    }

    /// `serve --tls-cert --tls-key --client-ca` for this directory.
    pub fn tls_options(&self, trust_domain: &str) -> TlsOptions {
        let server = self.server();
        TlsOptions {
            cert: server.cert_chain,
            key: server.key,
            client_ca: Some(server.root_cert),
            trust_domain: trust_domain.to_string(),
        }
    }
}

/// When a certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From (a little before) now, for `days`.
    pub fn days(days: u32) -> Validity {
        let now = OffsetDateTime::now_utc();
        Validity {
            not_before: now - CLOCK_SKEW,
            not_after: now + Duration::from_secs(u64::from(days) * 24 * 3600),
        }
    }
}

/// A freshly issued certificate and its key, in PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// What a certificate is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// Switchyard's server certificate: these DNS names or IP addresses.
    Server(Vec<String>),
    /// A proxy, identified by its SPIFFE ID.
    Proxy(SpiffeId),
}

/// The CA: its certificate and signing key.
pub struct Authority {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Authority {
    /// The CA in `dir`, created (10 years) when there is none: re-running `switchyard certs` re-issues
    /// certificates every proxy already trusts.
    pub fn open_or_create(dir: &CertDir) -> Result<Authority, CertsError> {
        let files = dir.ca();
        if files.cert_chain.exists() || files.key.exists() {
            return Authority::open(dir);
        }
        let key = KeyPair::generate().map_err(mint_error("the CA key"))?;
        let mut params = CertificateParams::default();
        // Two CAs must not share a name: a verifier picks an issuer by name, and a certificate from the other
        // CA would then fail as a bad signature instead of an unknown issuer.
        let id: String = params.key_identifier(&key)[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        params.distinguished_name = distinguished_name(&format!("Switchyard CA {id}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + CA_VALIDITY;
        let cert = params
            .self_signed(&key)
            .map_err(mint_error("the CA certificate"))?;
        let authority = Authority {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        };
        write_private(
            &files.key,
            authority.issuer.key().serialize_pem().as_bytes(),
        )?;
        write_public(&files.cert_chain, authority.cert_pem.as_bytes())?;
        Ok(authority)
    }

    /// The CA already in `dir`.
    pub fn open(dir: &CertDir) -> Result<Authority, CertsError> {
        let files = dir.ca();
        let bad = |reason: String| CertsError::BadCa {
            dir: dir.root.join("ca"),
            reason,
        };
        let cert_pem = read(&files.cert_chain)?;
        let key = KeyPair::from_pem(&read(&files.key)?).map_err(|e| bad(e.to_string()))?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| bad(e.to_string()))?;
        Ok(Authority { cert_pem, issuer })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A certificate for `subject`, signed by this CA.
    pub fn issue(&self, subject: &Subject, validity: Validity) -> Result<Issued, CertsError> {
        let what = match subject {
            Subject::Server(_) => "Switchyard's certificate".to_string(),
            Subject::Proxy(id) => format!("the certificate of {id}"),
        };
        let key = KeyPair::generate().map_err(mint_error(&what))?;
        let mut params = CertificateParams::default();
        match subject {
            Subject::Server(names) => {
                params.distinguished_name = distinguished_name(SERVER_NAME);
                params.subject_alt_names =
                    names.iter().map(|n| san(n)).collect::<Result<_, _>>()?;
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            }
            Subject::Proxy(id) => {
                params.distinguished_name =
                    distinguished_name(&format!("{}.{}", id.name, id.namespace));
                let uri = id.to_string();
                let uri = uri
                    .clone()
                    .try_into()
                    .map_err(|e: rcgen::Error| CertsError::BadName(uri, e.to_string()))?;
                params.subject_alt_names = vec![SanType::URI(uri)];
                // Istio's workload certificates serve both ends of a connection.
                params.extended_key_usages = vec![
                    ExtendedKeyUsagePurpose::ClientAuth,
                    ExtendedKeyUsagePurpose::ServerAuth,
                ];
            }
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(mint_error(&what))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issues a certificate and writes it with the CA's certificate into `files`. The key goes first and
    /// the certificate last, each renamed into place.
    pub fn issue_into(
        &self,
        files: &CertFiles,
        subject: &Subject,
        validity: Validity,
    ) -> Result<(), CertsError> {
        let issued = self.issue(subject, validity)?;
        for path in [&files.cert_chain, &files.key, &files.root_cert] {
            if let Some(dir) = path.parent() {
                create_private_dir(dir)?;
            }
        }
        write_public(&files.root_cert, self.cert_pem.as_bytes())?;
        write_private(&files.key, issued.key_pem.as_bytes())?;
        write_public(&files.cert_chain, issued.cert_pem.as_bytes())?;
        Ok(())
    }
}

/// What [`mint`] issues.
#[derive(Debug, Clone)]
pub struct MintOptions {
    pub trust_domain: String,
    pub validity_days: u32,
    /// DNS names or IPs in Switchyard's certificate.
    pub server_names: Vec<String>,
    /// Proxies to issue for, as (namespace, name).
    pub proxies: Vec<(String, String)>,
}

/// One issued certificate, for a report.
#[derive(Debug, Clone)]
pub struct Minted {
    pub holder: String,
    pub files: CertFiles,
}

/// The CA (kept when `dir` already has one), Switchyard's certificate and one certificate per proxy.
pub fn mint(dir: &CertDir, options: &MintOptions) -> Result<Vec<Minted>, CertsError> {
    let ca = Authority::open_or_create(dir)?;
    let validity = Validity::days(options.validity_days);
    let mut minted = vec![Minted {
        holder: "the CA".to_string(),
        files: dir.ca(),
    }];
    let server = dir.server();
    ca.issue_into(
        &server,
        &Subject::Server(options.server_names.clone()),
        validity,
    )?;
    minted.push(Minted {
        holder: "switchyard".to_string(),
        files: server,
    });
    for (namespace, name) in &options.proxies {
        let files = dir.proxy(namespace, name);
        let id = SpiffeId::new(&options.trust_domain, namespace, name);
        ca.issue_into(&files, &Subject::Proxy(id.clone()), validity)?;
        minted.push(Minted {
            holder: id.to_string(),
            files,
        });
    }
    Ok(minted)
}

/// Switchyard's default server names: its own, and what a client on this machine dials.
pub fn default_server_names() -> Vec<String> {
    vec![
        SERVER_NAME.to_string(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
    ]
}

fn san(name: &str) -> Result<SanType, CertsError> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    name.to_string()
        .try_into()
        .map(SanType::DnsName)
        .map_err(|e: rcgen::Error| CertsError::BadName(name.to_string(), e.to_string()))
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Switchyard");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn mint_error(what: &str) -> impl FnOnce(rcgen::Error) -> CertsError + '_ {
    move |source| CertsError::Mint {
        what: what.to_string(),
        source,
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CertsError + '_ {
    move |source| CertsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn read(path: &Path) -> Result<String, CertsError> {
    std::fs::read_to_string(path).map_err(io_error(path))
}

/// Creates `dir` (and its parents) 0700: it holds a private key.
fn create_private_dir(dir: &Path) -> Result<(), CertsError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_error(dir))
}

fn write_public(path: &Path, content: &[u8]) -> Result<(), CertsError> {
    write_atomically(path, content, 0o644)
}

fn write_private(path: &Path, content: &[u8]) -> Result<(), CertsError> {
    write_atomically(path, content, 0o600)
}

/// Writes a hidden temporary file with `mode` from the start (a key is never readable by others, not even
/// for a moment), then renames it over `path`.
fn write_atomically(path: &Path, content: &[u8], mode: u32) -> Result<(), CertsError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temporary)?;
        file.write_all(content)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written.map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::xds::identity::spiffe_id;
    use crate::xds::tls::read_certificates;

    fn mode(path: &Path) -> u32 {
        path.metadata().unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_ca_then_proxy_certificates_carrying_their_spiffe_id() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = CertDir::new(tmp.path().join("certs"));
        let ca = Authority::open_or_create(&dir).unwrap();
        let id = SpiffeId::new("cluster.local", "default", "reviews-v2");
        let files = dir.proxy("default", "reviews-v2");
        ca.issue_into(&files, &Subject::Proxy(id.clone()), Validity::days(1))
            .unwrap();
        assert!(files.exist());
        let leaf = &read_certificates(&files.cert_chain).unwrap()[0];
        assert_eq!(spiffe_id(leaf).unwrap(), id);
        assert_eq!(mode(&files.key), 0o600);
        assert_eq!(mode(&files.cert_chain), 0o644);
        assert_eq!(mode(files.key.parent().unwrap()), 0o700);
        assert_eq!(mode(&dir.ca().key), 0o600);

        // Opened again, the same CA signs: the root every proxy holds stays valid.
        let again = Authority::open_or_create(&dir).unwrap();
        assert_eq!(again.cert_pem(), ca.cert_pem());
    }
}
