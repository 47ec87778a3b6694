//! Envoy resources as JSON, the way Envoy's `/config_dump` and `istioctl proxy-config -o json` print them: proto
//! field names, and every `Any` expanded with its `@type`.
//!
//! envoy-types has no serde and no runtime descriptors, so the descriptors come from a file checked in beside
//! this one, `envoy_descriptors.bin`: envoy-types' own descriptor set cut down to the files that define what
//! Switchyard serves (the four resource types, every type translation packs into an `Any`) and their imports.
//! It is generated from envoy-types, never written by hand: `tests/golden_translate.rs` fails when it differs
//! from what the envoy-types in `Cargo.lock` yields (`SWITCHYARD_BLESS=1` rewrites it), and when a resource of a
//! translation golden holds a type it lacks.

use std::sync::OnceLock;

use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde::{Serialize, Serializer};

/// The descriptor set, as checked in.
pub const ENVOY_DESCRIPTORS: &[u8] = include_bytes!("envoy_descriptors.bin");

/// Where [`ENVOY_DESCRIPTORS`] lives in the repository, for the test that rewrites it.
pub const ENVOY_DESCRIPTORS_PATH: &str = "src/admin/envoy_descriptors.bin";

const ANY: &str = "google.protobuf.Any";

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the embedded Envoy descriptors do not decode: {0}")]
    Descriptors(String),
    #[error(
        "cannot print a {type_url}: {message} (a type missing from {})",
        ENVOY_DESCRIPTORS_PATH
    )]
    Resource { type_url: String, message: String },
}

/// The embedded descriptors, decoded on first use.
pub fn descriptors() -> Result<&'static DescriptorPool, RenderError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(ENVOY_DESCRIPTORS).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| RenderError::Descriptors(e.clone()))
}

/// One resource, known to serialize: [`Rendered::new`] has tried, so serializing it as part of a larger answer
/// does not fail half-way.
#[derive(Debug)]
pub struct Rendered(DynamicMessage);

impl Rendered {
    pub fn new(any: &Any) -> Result<Rendered, RenderError> {
        let failed = |message: String| RenderError::Resource {
            type_url: any.type_url.clone(),
            message,
        };
        let descriptor = descriptors()?
            .get_message_by_name(ANY)
            .ok_or_else(|| failed(format!("{ANY} is not described")))?;
        let message = DynamicMessage::decode(descriptor, any.encode_to_vec().as_slice())
            .map_err(|e| failed(e.to_string()))?;
        let rendered = Rendered(message);
        // An `Any` is only expanded while serializing: a nested type the descriptors lack shows up here.
        serde_json::to_writer(std::io::sink(), &rendered).map_err(|e| failed(e.to_string()))?;
        Ok(rendered)
    }
}

impl Serialize for Rendered {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Proto field names (snake_case), as Envoy's config_dump prints them; defaults left out, as there.
        let options = SerializeOptions::new().use_proto_field_name(true);
        self.0.serialize_with_options(serializer, &options)
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, Listener};
    use envoy_types::pb::envoy::extensions::filters::http::buffer::v3::Buffer;
    use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        http_filter, HttpConnectionManager, HttpFilter,
    };
    use envoy_types::util::pack_any;

    use super::*;

    /// A listener whose connection manager runs `http_filter`.
    fn listener(http_filter: Any) -> Any {
        let hcm = HttpConnectionManager {
            stat_prefix: "outbound_0.0.0.0_9080".into(),
            http_filters: vec![HttpFilter {
                name: "envoy.filters.http.x".into(),
                config_type: Some(http_filter::ConfigType::TypedConfig(http_filter)),
                ..Default::default()
            }],
            ..Default::default()
        };
        pack_any(Listener {
            name: "0.0.0.0_9080".into(),
            filter_chains: vec![FilterChain {
                filters: vec![Filter {
                    name: "envoy.filters.network.http_connection_manager".into(),
                    config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
                }],
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    #[test]
    fn resources_print_as_a_config_dump_does() {
        let rendered = Rendered::new(&listener(pack_any(Router::default()))).unwrap();
        let json = serde_json::to_value(&rendered).unwrap();
        assert_eq!(
            json["@type"],
            "type.googleapis.com/envoy.config.listener.v3.Listener"
        );
        let hcm = &json["filter_chains"][0]["filters"][0]["typed_config"];
        assert_eq!(
            hcm["@type"],
            "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
        );
        assert_eq!(hcm["stat_prefix"], "outbound_0.0.0.0_9080", "{json}");
        assert_eq!(
            hcm["http_filters"][0]["typed_config"]["@type"],
            "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
        );
    }

    #[test]
    fn a_type_the_descriptors_lack_is_named() {
        let error = Rendered::new(&listener(pack_any(Buffer::default()))).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("envoy.extensions.filters.http.buffer.v3.Buffer")
                && message.contains(ENVOY_DESCRIPTORS_PATH),
            "{message}"
        );
    }
}
