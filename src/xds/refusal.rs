//! Why TLS connections and xDS streams were refused, and the counters `/metrics` shows: shared by the TLS
//! acceptor (`tls`) and the stream identity check (`identity`).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use rustls::CertificateError;

/// Why a connection or a stream was refused: the `reason` label of `switchyard_xds_tls_refused_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The client certificate has expired.
    Expired,
    NotYetValid,
    /// The client certificate is not signed by the client CA.
    UnknownIssuer,
    /// Mutual TLS is required and the client sent no certificate.
    NoClientCertificate,
    /// Any other defect of the client certificate (bad signature, wrong usage, revoked...).
    BadCertificate,
    /// The client refused Switchyard's certificate (an alert from the client).
    ServerCertificateRefused,
    /// Not TLS, or TLS Switchyard does not speak (a plaintext client on the TLS port lands here).
    Protocol,
    HandshakeTimeout,
    /// The certificate was accepted but carries no usable SPIFFE ID.
    NoSpiffeId,
    /// The node the stream claims is not the certificate's identity (`PERMISSION_DENIED`).
    IdentityMismatch,
}

impl Refusal {
    pub const ALL: [Refusal; 10] = [
        Refusal::Expired,
        Refusal::NotYetValid,
        Refusal::UnknownIssuer,
        Refusal::NoClientCertificate,
        Refusal::BadCertificate,
        Refusal::ServerCertificateRefused,
        Refusal::Protocol,
        Refusal::HandshakeTimeout,
        Refusal::NoSpiffeId,
        Refusal::IdentityMismatch,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Refusal::Expired => "expired",
            Refusal::NotYetValid => "not_yet_valid",
            Refusal::UnknownIssuer => "unknown_issuer",
            Refusal::NoClientCertificate => "no_client_certificate",
            Refusal::BadCertificate => "bad_certificate",
            Refusal::ServerCertificateRefused => "server_certificate_refused",
            Refusal::Protocol => "protocol",
            Refusal::HandshakeTimeout => "handshake_timeout",
            Refusal::NoSpiffeId => "no_spiffe_id",
            Refusal::IdentityMismatch => "identity_mismatch",
        }
    }

    /// The reason a failed handshake gives, from the error tokio-rustls wraps.
    pub(super) fn of_handshake(error: &io::Error) -> Refusal {
        let Some(tls) = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        else {
            return Refusal::Protocol;
        };
        match tls {
            rustls::Error::InvalidCertificate(e) => match e {
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    Refusal::Expired
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    Refusal::NotYetValid
                }
                CertificateError::UnknownIssuer => Refusal::UnknownIssuer,
                _ => Refusal::BadCertificate,
            },
            rustls::Error::NoCertificatesPresented => Refusal::NoClientCertificate,
            rustls::Error::AlertReceived(_) => Refusal::ServerCertificateRefused,
            _ => Refusal::Protocol,
        }
    }
}

/// TLS totals since start, for `/metrics`.
#[derive(Debug, Default)]
pub struct TlsCounters {
    refused: [AtomicU64; Refusal::ALL.len()],
    pub(super) reloads_accepted: AtomicU64,
    pub(super) reloads_rejected: AtomicU64,
}

impl TlsCounters {
    pub fn refused(&self, reason: Refusal) {
        self.refused[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, reason: Refusal) -> u64 {
        self.refused[reason as usize].load(Ordering::Relaxed)
    }

    /// (accepted, rejected) reloads of the certificate files.
    pub fn reloads(&self) -> (u64, u64) {
        (
            self.reloads_accepted.load(Ordering::Relaxed),
            self.reloads_rejected.load(Ordering::Relaxed),
        )
    }
}
