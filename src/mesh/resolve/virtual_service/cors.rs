//! `corsPolicy`.

use super::HttpRouteContext;
use crate::mesh::resolve::validate;
use crate::mesh::resolve::validate::to_mesh_match as string_match;
use crate::mesh::resolve::Diags;
use crate::mesh::Cors;
use crate::spec;

impl HttpRouteContext<'_> {
    pub(super) fn cors(&self, c: &spec::CorsPolicy, diags: &mut Diags<'_>) -> Option<Cors> {
        let spec::CorsPolicy {
            allow_origins,
            allow_methods,
            allow_headers,
            expose_headers,
            max_age,
            allow_credentials,
            unmatched_preflights: _,
        } = c;
        let mut ok = true;
        for (i, m) in allow_origins.iter().enumerate() {
            ok &= validate::value_match(
                diags,
                self.meta,
                &self.field(&format!("corsPolicy.allowOrigins[{i}]")),
                m,
            );
        }
        let max_age = validate::opt_duration(
            diags,
            self.meta,
            &self.field("corsPolicy.maxAge"),
            max_age.as_ref(),
        );
        ok.then(|| Cors {
            allow_origins: allow_origins.iter().map(string_match).collect(),
            allow_methods: allow_methods.clone(),
            allow_headers: allow_headers.clone(),
            expose_headers: expose_headers.clone(),
            max_age,
            allow_credentials: *allow_credentials,
        })
    }
}
