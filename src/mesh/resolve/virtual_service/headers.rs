//! Header manipulation: `headers.request` and `headers.response` set/add/remove.

use super::HttpRouteContext;
use crate::mesh::resolve::Diags;
use crate::mesh::{Code, HeaderOperations, HeaderOps};
use crate::spec;

impl HttpRouteContext<'_> {
    pub(super) fn headers(
        &self,
        h: &spec::Headers,
        field: &str,
        diags: &mut Diags<'_>,
    ) -> HeaderOperations {
        let mut ops = |o: &Option<spec::HeaderOperations>, side: &str| {
            let Some(o) = o else {
                return HeaderOps::default();
            };
            let names = o
                .set
                .keys()
                .map(|k| ("set", k))
                .chain(o.add.keys().map(|k| ("add", k)));
            for (op, name) in names.chain(o.remove.iter().map(|k| ("remove", k))) {
                // Envoy refuses to modify pseudo-headers and `host` this way (use `rewrite.authority`).
                if name.is_empty() || name.starts_with(':') || name.eq_ignore_ascii_case("host") {
                    diags.error(
                        self.meta,
                        Code::ProtectedHeader,
                        format!("{field}.{side}.{op}"),
                        format!(
                            "header `{name}` cannot be modified (empty, pseudo-header or host)"
                        ),
                    );
                }
            }
            HeaderOps {
                set: o.set.clone(),
                add: o.add.clone(),
                remove: o.remove.clone(),
            }
        };
        let request = ops(&h.request, "request");
        let response = ops(&h.response, "response");
        HeaderOperations { request, response }
    }
}
