//! Test support for golden files: rendering Envoy resources the way a config dump shows them, loading case
//! inputs, and comparing against (or, with `SWITCHYARD_BLESS=1`, rewriting) files under `tests/golden`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::{value::Kind, Any, Struct, Value};
use envoy_types::util::pack_any;
use prost::Name;
use prost_reflect::prost_types::FileDescriptorSet;
use prost_reflect::{DescriptorPool, DynamicMessage, FileDescriptor, SerializeOptions};
use serde::Serialize;
use switchyard::spec::{self, Config};
use switchyard::translate::Resources;

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn golden_dir() -> PathBuf {
    manifest_dir().join("tests/golden")
}

/// Istio's Bookinfo samples, read verbatim from the shared reference directory.
pub fn istio_samples_dir() -> PathBuf {
    manifest_dir().join("../shared/istio-bookinfo")
}

pub fn blessing() -> bool {
    std::env::var_os("SWITCHYARD_BLESS").is_some_and(|v| v == "1")
}

/// envoy-types ships the FileDescriptorSet of everything it generates; find the crate through cargo itself so
/// the test works wherever the registry lives.
fn descriptor_set_path() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(manifest_dir())
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata JSON");
    let manifest = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == "envoy-types")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("envoy-types in cargo metadata");
    Path::new(manifest)
        .parent()
        .expect("crate dir")
        .join("src/generated/types.bin")
}

pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let bytes = fs::read(descriptor_set_path()).expect("read envoy-types descriptor set");
        DescriptorPool::decode(bytes.as_slice()).expect("decode descriptor set")
    })
}

/// What Switchyard serves, and every type translation packs into an `Any`: the roots of the descriptor set the
/// admin endpoint embeds (`switchyard::admin::render`). A type translation starts to pack belongs here; the
/// translation goldens fail, naming it, until it is here and the set is blessed.
pub fn embedded_descriptor_roots() -> Vec<String> {
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use envoy_types::pb::envoy::config::listener::v3::Listener;
    use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
    use envoy_types::pb::envoy::extensions::filters::http::cors::v3::{Cors, CorsPolicy};
    use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
    use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
    use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
    use envoy_types::pb::envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig;
    use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
    vec![
        Cluster::full_name(),
        ClusterLoadAssignment::full_name(),
        Listener::full_name(),
        RouteConfiguration::full_name(),
        HttpConnectionManager::full_name(),
        HttpFault::full_name(),
        Cors::full_name(),
        CorsPolicy::full_name(),
        Router::full_name(),
        PreviousHostsPredicate::full_name(),
        PreviousPrioritiesConfig::full_name(),
        HttpProtocolOptions::full_name(),
    ]
}

/// The descriptor set the admin endpoint embeds, cut from envoy-types' own: the files that define `roots` and
/// every file they import, in envoy-types' order (so the same envoy-types always yields the same bytes), without
/// source info or custom options (comments and validation rules do not change how a message prints).
pub fn embedded_descriptor_set(roots: &[String]) -> Vec<u8> {
    let pool = pool();
    let mut needed = BTreeSet::new();
    let mut todo: Vec<FileDescriptor> = roots
        .iter()
        .map(|name| {
            pool.get_message_by_name(name)
                .unwrap_or_else(|| panic!("{name} is not in envoy-types' descriptor set"))
                .parent_file()
        })
        .collect();
    while let Some(file) = todo.pop() {
        if needed.insert(file.name().to_owned()) {
            todo.extend(file.dependencies());
        }
    }
    let set = FileDescriptorSet {
        file: pool
            .files()
            .filter(|f| needed.contains(f.name()))
            .map(|f| {
                let mut file = f.file_descriptor_proto().clone();
                file.source_code_info = None;
                file
            })
            .collect(),
    };
    prost::Message::encode_to_vec(&set)
}

struct Rendered(DynamicMessage);

impl Serialize for Rendered {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Proto field names (snake_case), as Envoy's config_dump prints them.
        let options = SerializeOptions::new().use_proto_field_name(true);
        self.0.serialize_with_options(serializer, &options)
    }
}

/// A list of messages as YAML with Envoy's JSON field names and `Any`s expanded.
pub fn render<M: prost::Message + prost::Name>(messages: &[M]) -> String {
    let descriptor = pool()
        .get_message_by_name(&M::full_name())
        .unwrap_or_else(|| panic!("{} not in the descriptor pool", M::full_name()));
    let rendered: Vec<Rendered> = messages
        .iter()
        .map(|m| {
            Rendered(
                DynamicMessage::decode(descriptor.clone(), m.encode_to_vec().as_slice())
                    .expect("decode"),
            )
        })
        .collect();
    serde_yaml::to_string(&rendered).expect("render YAML")
}

/// The four golden files of one proxy: `(file name, contents)`.
pub fn render_resources(r: &Resources) -> Vec<(&'static str, String)> {
    vec![
        ("listeners.yaml", render(&r.listeners)),
        ("routes.yaml", render(&r.routes)),
        ("clusters.yaml", render(&r.clusters)),
        ("endpoints.yaml", render(&r.endpoints)),
    ]
}

/// Every resource encoded, for byte-level determinism checks.
pub fn encode_all(r: &Resources) -> Vec<Vec<u8>> {
    use prost::Message;
    let mut out = Vec::new();
    out.extend(r.listeners.iter().map(Message::encode_to_vec));
    out.extend(r.routes.iter().map(Message::encode_to_vec));
    out.extend(r.clusters.iter().map(Message::encode_to_vec));
    out.extend(r.endpoints.iter().map(Message::encode_to_vec));
    out
}

/// Every resource packed as it is served, in an `Any`.
pub fn pack_all(r: &Resources) -> Vec<Any> {
    let mut out = Vec::new();
    out.extend(r.listeners.iter().cloned().map(pack_any));
    out.extend(r.routes.iter().cloned().map(pack_any));
    out.extend(r.clusters.iter().cloned().map(pack_any));
    out.extend(r.endpoints.iter().cloned().map(pack_any));
    out
}

/// Loads files in order, each on top of the previous ones the way `kubectl apply` would (same kind/namespace/name
/// replaces). `istio:<file>` names a sample in the shared Istio directory; other paths are relative to `base`.
pub fn load_inputs(base: &Path, inputs: &[String]) -> Config {
    let mut config = Config::default();
    for input in inputs {
        let (path, label) = match input.strip_prefix("istio:") {
            Some(file) => (
                istio_samples_dir().join(file),
                format!("istio-bookinfo/{file}"),
            ),
            None => (base.join(input), input.clone()),
        };
        let text =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let loaded = spec::load_str(&label, &text).unwrap_or_else(|e| panic!("load {label}:\n{e}"));
        config = config.overlay(loaded);
    }
    config
}

/// A node written as YAML (`id`, `cluster`, `metadata` with strings and string maps).
pub fn node_from_yaml(value: &serde_yaml::Value) -> Node {
    fn to_value(v: &serde_yaml::Value) -> Value {
        let kind = match v {
            serde_yaml::Value::Mapping(m) => Kind::StructValue(Struct {
                fields: m
                    .iter()
                    .map(|(k, v)| (k.as_str().expect("string key").to_owned(), to_value(v)))
                    .collect(),
            }),
            serde_yaml::Value::String(s) => Kind::StringValue(s.clone()),
            other => Kind::StringValue(
                serde_yaml::to_string(other)
                    .expect("scalar")
                    .trim()
                    .to_owned(),
            ),
        };
        Value { kind: Some(kind) }
    }
    let metadata = match to_value(&value["metadata"]).kind {
        Some(Kind::StructValue(s)) => Some(s),
        _ => None,
    };
    Node {
        id: value["id"].as_str().expect("node id").to_owned(),
        cluster: value["cluster"].as_str().unwrap_or_default().to_owned(),
        metadata,
        ..Default::default()
    }
}

/// Compares `files` with what is on disk under `dir`, or rewrites them when blessing (also deleting files in
/// `dir` nobody produces any more). Returns one message per difference.
pub fn check_dir(dir: &Path, files: &[(String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    if blessing() {
        fs::create_dir_all(dir).expect("create golden dir");
        let wanted: BTreeSet<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        for (name, contents) in files {
            let path = dir.join(name);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).expect("create golden subdir");
            }
            fs::write(&path, contents).expect("write golden");
        }
        remove_orphans(dir, dir, &wanted);
        return problems;
    }
    for (name, contents) in files {
        let path = dir.join(name);
        match fs::read_to_string(&path) {
            Ok(expected) if &expected == contents => {}
            Ok(expected) => problems.push(format!(
                "{} differs:\n{}",
                path.display(),
                diff(&expected, contents)
            )),
            Err(_) => problems.push(format!(
                "{} is missing (run with SWITCHYARD_BLESS=1)",
                path.display()
            )),
        }
    }
    problems
}

fn remove_orphans(root: &Path, dir: &Path, wanted: &BTreeSet<&str>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .replace('\\', "/");
        if path.is_dir() {
            remove_orphans(root, &path, wanted);
            if fs::read_dir(&path)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false)
            {
                fs::remove_dir(&path).expect("remove empty dir");
            }
        } else if !wanted.contains(rel.as_str()) && !is_case_input(&rel) {
            fs::remove_file(&path).expect("remove orphan golden");
        }
    }
}

/// Files a case author writes, which blessing must never delete.
fn is_case_input(rel: &str) -> bool {
    matches!(rel, "case.yaml" | "input.yaml" | "proxy.yaml")
}

/// The whole difference, as a unified diff of the golden (`-`) and what the code produces now (`+`).
fn diff(expected: &str, actual: &str) -> String {
    let diff = similar::TextDiff::from_lines(expected, actual);
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header("golden", "actual")
        .to_string();
    if text.trim().is_empty() {
        "(only line endings or trailing whitespace differ)".to_owned()
    } else {
        text
    }
}
