//! Loading: multi-document YAML with provenance, strict fields, "not supported yet", namespaces and directories.

use std::fs;
use std::path::PathBuf;

use switchyard::spec::{self, Kind, LoadError, StringMatch};

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/istio-bookinfo")
}

fn one_error(label: &str, text: &str) -> LoadError {
    let errors = spec::load_str(label, text).expect_err("should fail").0;
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.into_iter().next().expect("one")
}

#[test]
fn loads_every_bookinfo_task_sample_verbatim() {
    for file in [
        "bookinfo-gateway.yaml",
        "destination-rule-all.yaml",
        "virtual-service-all-v1.yaml",
        "virtual-service-reviews-test-v2.yaml",
        "virtual-service-ratings-test-delay.yaml",
        "virtual-service-ratings-test-abort.yaml",
        "virtual-service-reviews-50-v3.yaml",
        "virtual-service-reviews-v3.yaml",
        "virtual-service-reviews-80-20.yaml",
        "virtual-service-reviews-jason-v2-v3.yaml",
        "fault-injection-details-v1.yaml",
    ] {
        let text = fs::read_to_string(samples().join(file)).expect("sample");
        if let Err(e) = spec::load_str(file, &text) {
            panic!("{file}:\n{e}");
        }
    }
}

#[test]
fn documents_carry_file_index_and_line_and_default_namespace() {
    let text = fs::read_to_string(samples().join("destination-rule-all.yaml")).expect("sample");
    let config = spec::load_str("dr.yaml", &text).expect("load");
    let origins: Vec<(usize, usize)> = config
        .destination_rules
        .iter()
        .map(|d| (d.origin.doc_index, d.origin.line))
        .collect();
    assert_eq!(origins, vec![(0, 1), (1, 12), (2, 29), (3, 49)]);
    assert!(config
        .destination_rules
        .iter()
        .all(|d| d.namespace() == "default"));
    assert_eq!(
        config.destination_rules[1]
            .key(Kind::DestinationRule)
            .to_string(),
        "DestinationRule default/reviews"
    );
}

#[test]
fn header_match_is_typed() {
    let text =
        fs::read_to_string(samples().join("virtual-service-reviews-test-v2.yaml")).expect("sample");
    let config = spec::load_str("vs.yaml", &text).expect("load");
    let m = &config.virtual_services[0].value.http[0].matches[0];
    assert_eq!(
        m.headers.get("end-user"),
        Some(&StringMatch::Exact("jason".into()))
    );
}

#[test]
fn istio_mutual_tls_is_not_supported_yet() {
    let text =
        fs::read_to_string(samples().join("destination-rule-all-mtls.yaml")).expect("sample");
    let errors = spec::load_str("mtls.yaml", &text)
        .expect_err("ISTIO_MUTUAL must be rejected")
        .0;
    assert_eq!(errors.len(), 4, "one per DestinationRule: {errors:#?}");
    let first = &errors[0];
    assert_eq!(first.code, "SY0004");
    assert_eq!(first.field, "spec.trafficPolicy.tls.mode");
    assert_eq!(first.line, 9, "the `mode:` line");
    assert!(
        first.message.starts_with("TLS mode `ISTIO_MUTUAL`"),
        "no path repeated in the message: {first}"
    );
    assert!(
        first.message.contains("ISTIO_MUTUAL") && first.message.contains("not supported yet"),
        "{first}"
    );
    let r = first.resource.as_ref().expect("resource");
    assert_eq!(
        (r.kind, r.namespace.as_str(), r.name.as_str()),
        (Kind::DestinationRule, "default", "productpage")
    );
    assert_eq!(
        first.to_string(),
        format!("Error [SY0004] (DestinationRule default/productpage) mtls.yaml:9 spec.trafficPolicy.tls.mode: {}", first.message)
    );
}

#[test]
fn unknown_field_names_line_and_path() {
    let text = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\n  namespace: shop\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n      wieght: 10\n";
    let e = one_error("typo.yaml", text);
    assert_eq!(e.code, "SY0003");
    assert_eq!(e.line, 11);
    assert_eq!(e.field, "spec.http[0].route[0].wieght");
    assert!(e.message.contains("unknown field `wieght`"), "{e}");
    let r = e.resource.expect("resource");
    assert_eq!((r.namespace.as_str(), r.name.as_str()), ("shop", "reviews"));
}

#[test]
fn tcp_routes_are_not_supported_yet() {
    let text = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: db\nspec:\n  hosts: [db]\n  tcp:\n  - route:\n    - destination: {host: db}\n";
    let e = one_error("tcp.yaml", text);
    assert_eq!(
        (e.code.as_str(), e.field.as_str(), e.line),
        ("SY0004", "spec.tcp", 7)
    );
}

#[test]
fn kubernetes_metadata_is_accepted() {
    let text = "apiVersion: networking.istio.io/v1beta1\nkind: WorkloadEntry\nmetadata:\n  name: w\n  labels: {a: b}\n  annotations: {kubectl.kubernetes.io/last-applied-configuration: '{}'}\n  uid: 123\n  resourceVersion: '7'\n  generation: 2\n  creationTimestamp: '2024-01-01T00:00:00Z'\nspec:\n  address: 127.0.0.9\nstatus: {}\n";
    let config = spec::load_str("k8s.yaml", text).expect("load");
    assert_eq!(
        config.workload_entries[0]
            .metadata
            .labels
            .get("a")
            .map(String::as_str),
        Some("b")
    );
}

#[test]
fn other_kinds_and_api_versions_are_errors() {
    let e = one_error(
        "svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\n",
    );
    assert_eq!(
        (e.code.as_str(), e.field.as_str(), e.line),
        ("SY0002", "apiVersion", 1)
    );
    let e = one_error(
        "x.yaml",
        "---\n# c\napiVersion: networking.istio.io/v1\nkind: EnvoyFilter\nmetadata:\n  name: s\n",
    );
    assert_eq!(
        (e.code.as_str(), e.field.as_str(), e.line, e.doc_index),
        ("SY0002", "kind", 3, 0)
    );
}

#[test]
fn invalid_yaml_names_the_line() {
    let e = one_error(
        "bad.yaml",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: [unclosed\n",
    );
    assert_eq!(e.code, "SY0001");
    assert!(e.line >= 4, "{e}");
}

#[test]
fn all_errors_are_reported_not_just_the_first() {
    let text = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: a}\nspec: {bogus: 1}\n---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: b}\nspec: {bogus: 2}\n";
    let errors = spec::load_str("two.yaml", text).expect_err("fails").0;
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![4, 9]);
}

#[test]
fn directories_are_read_recursively_in_sorted_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let we = |name: &str| {
        format!("apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: {name}\nspec:\n  address: 127.0.0.9\n")
    };
    fs::create_dir_all(dir.path().join("b/nested")).expect("mkdir");
    fs::write(dir.path().join("b/nested/z.yml"), we("third")).expect("write");
    fs::write(dir.path().join("b/a.yaml"), we("second")).expect("write");
    fs::write(dir.path().join("a.yaml"), we("first")).expect("write");
    fs::write(dir.path().join("notes.txt"), "not yaml: [").expect("write");
    let config = spec::load_paths(&[dir.path().to_path_buf()]).expect("load");
    let names: Vec<&str> = config.workload_entries.iter().map(|w| w.name()).collect();
    assert_eq!(names, vec!["first", "second", "third"]);
    assert!(config.workload_entries[2]
        .origin
        .file
        .ends_with("b/nested/z.yml"));
}

#[test]
fn missing_paths_are_errors() {
    let errors = spec::load_paths(&[PathBuf::from("/nonexistent/switchyard")])
        .expect_err("fails")
        .0;
    assert_eq!(errors[0].code, "SY0001");
}

#[test]
fn overlay_replaces_by_key_like_kubectl_apply() {
    let all_v1 = spec::load_str(
        "a.yaml",
        &fs::read_to_string(samples().join("virtual-service-all-v1.yaml")).expect("s"),
    )
    .expect("l");
    let test_v2 = spec::load_str(
        "b.yaml",
        &fs::read_to_string(samples().join("virtual-service-reviews-test-v2.yaml")).expect("s"),
    )
    .expect("l");
    let merged = all_v1.overlay(test_v2);
    assert_eq!(merged.virtual_services.len(), 4);
    let reviews = merged
        .virtual_services
        .iter()
        .find(|v| v.name() == "reviews")
        .expect("reviews");
    assert_eq!(reviews.origin.file, PathBuf::from("b.yaml"));
}

#[test]
fn a_loader_that_reparses_only_changed_files_loads_what_a_fresh_load_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = [dir.path().to_path_buf()];
    let we = |name: &str, address: &str| {
        format!("apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: {name}\nspec:\n  address: {address}\n")
    };
    fs::write(dir.path().join("a.yaml"), we("a", "127.0.0.1")).expect("write");
    fs::write(dir.path().join("b.yaml"), we("b", "127.0.0.2")).expect("write");
    fs::write(dir.path().join("c.yaml"), we("c", "127.0.0.3")).expect("write");
    let mut loader = spec::Loader::default();
    assert_eq!(
        loader.load_paths(&paths).expect("load"),
        spec::load_paths(&paths).expect("load")
    );

    // One file changes, one disappears, one appears, one breaks and is fixed again.
    fs::write(dir.path().join("b.yaml"), we("b", "127.0.0.22")).expect("write");
    fs::remove_file(dir.path().join("c.yaml")).expect("remove");
    fs::write(dir.path().join("d.yaml"), we("d", "127.0.0.4")).expect("write");
    let config = loader.load_paths(&paths).expect("load");
    assert_eq!(config, spec::load_paths(&paths).expect("load"));
    let names: Vec<&str> = config.workload_entries.iter().map(|w| w.name()).collect();
    assert_eq!(names, vec!["a", "b", "d"]);
    assert_eq!(
        config.workload_entries[1].value.address.as_deref(),
        Some("127.0.0.22")
    );

    fs::write(dir.path().join("a.yaml"), "kind: [").expect("write");
    let errors = loader.load_paths(&paths).expect_err("invalid");
    assert_eq!(errors, spec::load_paths(&paths).expect_err("invalid"));
    fs::write(dir.path().join("a.yaml"), we("a", "127.0.0.1")).expect("write");
    assert_eq!(
        loader.load_paths(&paths).expect("load"),
        spec::load_paths(&paths).expect("load")
    );
}
