use crate::Error;

/// One upstream as the real services name it: `http://<host><.SERVICES_DOMAIN>:<port>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Host name including any `SERVICES_DOMAIN` suffix, e.g. `reviews` or `reviews.default.svc`.
    pub host: String,
    pub port: u16,
}

impl Upstream {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
        }
    }

    /// `http://host:port` followed by `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}:{}{}", self.host, self.port, path)
    }
}

/// The three upstream services productpage and reviews call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstreams {
    pub details: Upstream,
    pub reviews: Upstream,
    pub ratings: Upstream,
}

const DEFAULT_PORT: u16 = 9080;

impl Default for Upstreams {
    fn default() -> Self {
        Self {
            details: Upstream::new("details", DEFAULT_PORT),
            reviews: Upstream::new("reviews", DEFAULT_PORT),
            ratings: Upstream::new("ratings", DEFAULT_PORT),
        }
    }
}

impl Upstreams {
    /// Reads the real app's overrides: `DETAILS_HOSTNAME`/`DETAILS_SERVICE_PORT`, the same for `REVIEWS_`
    /// and `RATINGS_`, and `SERVICES_DOMAIN` (appended as `.<domain>`).
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// As [`Upstreams::from_env`], reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let domain = lookup("SERVICES_DOMAIN")
            .map(|domain| format!(".{domain}"))
            .unwrap_or_default();
        let one = |default: &str, host_var: &'static str, port_var: &'static str| {
            let host = lookup(host_var).unwrap_or_else(|| default.to_owned());
            let port = match lookup(port_var) {
                None => DEFAULT_PORT,
                Some(value) => value.trim().parse().map_err(|_| Error::InvalidPort {
                    var: port_var,
                    value: value.clone(),
                })?,
            };
            Ok::<_, Error>(Upstream::new(format!("{host}{domain}"), port))
        };
        Ok(Self {
            details: one("details", "DETAILS_HOSTNAME", "DETAILS_SERVICE_PORT")?,
            reviews: one("reviews", "REVIEWS_HOSTNAME", "REVIEWS_SERVICE_PORT")?,
            ratings: one("ratings", "RATINGS_HOSTNAME", "RATINGS_SERVICE_PORT")?,
        })
    }

    /// All three upstreams on the default names but on `port` (handy when one test sidecar serves all).
    pub fn on_port(port: u16) -> Self {
        let mut upstreams = Self::default();
        for upstream in [
            &mut upstreams.details,
            &mut upstreams.reviews,
            &mut upstreams.ratings,
        ] {
            upstream.port = port;
        }
        upstreams
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        |var| {
            vars.iter()
                .find(|(name, _)| *name == var)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    #[test]
    fn defaults_match_the_real_app() {
        let upstreams = Upstreams::from_lookup(lookup(&[])).unwrap();
        assert_eq!(upstreams, Upstreams::default());
        assert_eq!(
            upstreams.reviews.url("/reviews/0"),
            "http://reviews:9080/reviews/0"
        );
    }

    #[test]
    fn overrides_and_domain_apply() {
        let upstreams = Upstreams::from_lookup(lookup(&[
            ("SERVICES_DOMAIN", "bookinfo.svc.cluster.local"),
            ("RATINGS_HOSTNAME", "stars"),
            ("RATINGS_SERVICE_PORT", "9090"),
        ]))
        .unwrap();
        assert_eq!(
            upstreams.ratings.url("/ratings/0"),
            "http://stars.bookinfo.svc.cluster.local:9090/ratings/0"
        );
        assert_eq!(upstreams.details.host, "details.bookinfo.svc.cluster.local");
    }

    #[test]
    fn bad_port_names_the_variable() {
        let err = Upstreams::from_lookup(lookup(&[("DETAILS_SERVICE_PORT", "http")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable DETAILS_SERVICE_PORT=\"http\" is not a valid port number"
        );
    }
}
