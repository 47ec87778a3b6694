//! Header operations on routes and weighted clusters (`TranslateHeadersOperations`).

use envoy_types::pb::envoy::config::core::v3::{
    header_value_option::HeaderAppendAction, HeaderValueOption,
};
use envoy_types::pb::envoy::config::route::v3::{weighted_cluster::ClusterWeight, Route};

use crate::mesh::{HeaderOperations, HeaderOps};
use crate::translate::build;

/// The Envoy messages that carry header operations (routes and weighted-cluster entries), by their four fields.
pub(super) trait HeaderFields {
    fn header_fields(
        &mut self,
    ) -> (
        &mut Vec<HeaderValueOption>,
        &mut Vec<String>,
        &mut Vec<HeaderValueOption>,
        &mut Vec<String>,
    );
}

impl HeaderFields for Route {
    fn header_fields(
        &mut self,
    ) -> (
        &mut Vec<HeaderValueOption>,
        &mut Vec<String>,
        &mut Vec<HeaderValueOption>,
        &mut Vec<String>,
    ) {
        (
            &mut self.request_headers_to_add,
            &mut self.request_headers_to_remove,
            &mut self.response_headers_to_add,
            &mut self.response_headers_to_remove,
        )
    }
}

impl HeaderFields for ClusterWeight {
    fn header_fields(
        &mut self,
    ) -> (
        &mut Vec<HeaderValueOption>,
        &mut Vec<String>,
        &mut Vec<HeaderValueOption>,
        &mut Vec<String>,
    ) {
        (
            &mut self.request_headers_to_add,
            &mut self.request_headers_to_remove,
            &mut self.response_headers_to_add,
            &mut self.response_headers_to_remove,
        )
    }
}

/// Istio's `TranslateHeadersOperations`, appended to `target`: `set` overwrites, `add` appends.
pub(super) fn add_header_operations(target: &mut impl HeaderFields, h: &HeaderOperations) {
    let ops = |o: &HeaderOps, to_add: &mut Vec<HeaderValueOption>, to_remove: &mut Vec<String>| {
        let HeaderOps { set, add, remove } = o;
        to_add.extend(set.iter().map(|(k, v)| {
            build::header_value_option(k, v, HeaderAppendAction::OverwriteIfExistsOrAdd as i32)
        }));
        to_add.extend(add.iter().map(|(k, v)| {
            build::header_value_option(k, v, HeaderAppendAction::AppendIfExistsOrAdd as i32)
        }));
        to_remove.extend(remove.iter().cloned());
    };
    let HeaderOperations { request, response } = h;
    let (req_add, req_remove, resp_add, resp_remove) = target.header_fields();
    ops(request, req_add, req_remove);
    ops(response, resp_add, resp_remove);
}
