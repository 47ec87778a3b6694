use crate::Service;

/// Why a workload could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{service} has no version {version:?}; this stand-in implements {supported}")]
    UnsupportedVersion {
        service: Service,
        version: String,
        supported: &'static str,
    },
    #[error("environment variable {var}={value:?} is not a valid port number")]
    InvalidPort { var: &'static str, value: String },
    #[error("building the HTTP client that {service} uses for outgoing calls")]
    HttpClient {
        service: Service,
        #[source]
        source: reqwest::Error,
    },
    #[error("serving HTTP for {service}")]
    Serve {
        service: Service,
        #[source]
        source: std::io::Error,
    },
}

/// A service name that is not one of Bookinfo's four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown service {0:?}; expected productpage, details, reviews or ratings")]
pub struct UnknownService(pub String);
