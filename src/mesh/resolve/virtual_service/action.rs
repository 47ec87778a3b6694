//! What a route does: forward (`route`), `redirect` or `directResponse`, exactly one; and `rewrite`.

use super::HttpRouteContext;
use crate::mesh::resolve::validate;
use crate::mesh::resolve::Diags;
use crate::mesh::{Code, Redirect, Rewrite, RouteAction};
use crate::spec;

impl HttpRouteContext<'_> {
    pub(super) fn action(
        &self,
        destinations: &[spec::HttpRouteDestination],
        redirect: Option<&spec::HttpRedirect>,
        direct: Option<&spec::HttpDirectResponse>,
        diags: &mut Diags<'_>,
    ) -> Option<RouteAction> {
        match (destinations.is_empty(), redirect, direct) {
            (false, None, None) => self
                .destinations(destinations, diags)
                .map(RouteAction::Route),
            (true, Some(r), None) => self.redirect(r, diags).map(RouteAction::Redirect),
            (true, None, Some(d)) => {
                if !(200..600).contains(&d.status) {
                    diags.error(
                        self.meta,
                        Code::OutOfRange,
                        self.field("directResponse.status"),
                        format!("status {} is outside 200..599", d.status),
                    );
                    return None;
                }
                Some(RouteAction::DirectResponse {
                    status: d.status,
                    body: d.body.as_ref().and_then(|b| b.string.clone()),
                })
            }
            (true, None, None) => {
                diags.error(
                    self.meta,
                    Code::MissingField,
                    self.path.clone(),
                    "an HTTP route needs `route`, `redirect` or `directResponse`",
                );
                None
            }
            _ => {
                diags.error(
                    self.meta,
                    Code::ConflictingFields,
                    self.path.clone(),
                    "`route`, `redirect` and `directResponse` are mutually exclusive",
                );
                None
            }
        }
    }

    pub(super) fn redirect(
        &self,
        r: &spec::HttpRedirect,
        diags: &mut Diags<'_>,
    ) -> Option<Redirect> {
        let spec::HttpRedirect {
            uri,
            authority,
            port,
            derive_port: _,
            scheme,
            redirect_code,
            prefix_rewrite: _,
        } = r;
        let code = redirect_code.unwrap_or(301);
        if ![301, 302, 303, 307, 308].contains(&code) {
            diags.error(
                self.meta,
                Code::OutOfRange,
                self.field("redirect.redirectCode"),
                format!("redirect code {code} is not one of 301, 302, 303, 307, 308"),
            );
            return None;
        }
        Some(Redirect {
            uri: uri.clone(),
            authority: authority.clone(),
            port: *port,
            scheme: scheme.clone(),
            code,
        })
    }

    pub(super) fn rewrite(&self, r: &spec::HttpRewrite, diags: &mut Diags<'_>) -> Option<Rewrite> {
        let spec::HttpRewrite {
            uri,
            authority,
            uri_regex_rewrite,
        } = r;
        if uri.is_some() && uri_regex_rewrite.is_some() {
            diags.error(
                self.meta,
                Code::ConflictingFields,
                self.field("rewrite"),
                "set either `uri` or `uriRegexRewrite`, not both",
            );
            return None;
        }
        if let Some(rr) = uri_regex_rewrite {
            if !validate::regex(
                diags,
                self.meta,
                &self.field("rewrite.uriRegexRewrite.match"),
                &rr.pattern,
            ) {
                return None;
            }
        }
        Some(Rewrite {
            uri: uri.clone(),
            authority: authority.clone(),
            uri_regex: uri_regex_rewrite
                .as_ref()
                .map(|rr| (rr.pattern.clone(), rr.rewrite.clone())),
        })
    }
}
