use std::fmt;
use std::str::FromStr;

use crate::{Error, UnknownService};

/// One of Bookinfo's four services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    Productpage,
    Details,
    Reviews,
    Ratings,
}

impl Service {
    pub const ALL: [Service; 4] = [
        Service::Productpage,
        Service::Details,
        Service::Reviews,
        Service::Ratings,
    ];

    /// The Kubernetes service (and `app` label) name.
    pub fn name(self) -> &'static str {
        match self {
            Service::Productpage => "productpage",
            Service::Details => "details",
            Service::Reviews => "reviews",
            Service::Ratings => "ratings",
        }
    }

    /// The versions this stand-in implements. details v2 (Google Books) and ratings v2 (a database) need
    /// things outside loopback, so they are left out rather than faked.
    pub fn versions(self) -> &'static [&'static str] {
        match self {
            Service::Reviews => &["v1", "v2", "v3"],
            Service::Productpage | Service::Details | Service::Ratings => &["v1"],
        }
    }

    pub(crate) fn check_version(self, version: &str) -> Result<(), Error> {
        if self.versions().contains(&version) {
            return Ok(());
        }
        Err(Error::UnsupportedVersion {
            service: self,
            version: version.to_owned(),
            supported: match self {
                Service::Reviews => "v1, v2 and v3",
                Service::Productpage | Service::Details | Service::Ratings => "v1",
            },
        })
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Service {
    type Err = UnknownService;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Service::ALL
            .into_iter()
            .find(|service| service.name() == s)
            .ok_or_else(|| UnknownService(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for service in Service::ALL {
            assert_eq!(service.name().parse::<Service>(), Ok(service));
        }
        assert!("reviews-v2".parse::<Service>().is_err());
    }

    #[test]
    fn versions_are_checked() {
        assert!(Service::Reviews.check_version("v3").is_ok());
        let err = Service::Ratings.check_version("v2").unwrap_err();
        assert_eq!(
            err.to_string(),
            "ratings has no version \"v2\"; this stand-in implements v1"
        );
    }
}
