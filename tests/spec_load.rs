//! Loading: multi-document YAML with provenance, strict fields, "not supported yet", namespaces and directories.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

// ---- Clumsy and hostile input (docs/bad-input.md) ----

fn workload_entry(name: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: {name}\nspec:\n  address: 127.0.0.9\n")
}

/// Runs `f` on a thread and fails the test if it has not returned within `deadline`: a loader that blocks
/// (on a FIFO, on quadratic parsing) fails here instead of hanging the suite.
fn within<T: Send + 'static>(deadline: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(deadline)
        .unwrap_or_else(|_| panic!("did not return within {deadline:?}"))
}

const GENEROUS: Duration = Duration::from_secs(20);

#[test]
fn a_utf8_bom_is_accepted() {
    let text = format!("\u{feff}{}", workload_entry("w"));
    let config = spec::load_str("bom.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.workload_entries[0].name(), "w");
    assert_eq!(config.workload_entries[0].origin.line, 1);
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("bom.yaml"), text).unwrap();
    let config = spec::load_paths(&[dir.path().to_path_buf()]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.workload_entries.len(), 1);
}

#[test]
fn json_files_are_specs() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("w.json"),
        r#"{"apiVersion": "networking.istio.io/v1", "kind": "WorkloadEntry", "metadata": {"name": "w"}, "spec": {"address": "127.0.0.9"}}"#,
    )
    .unwrap();
    let config = spec::load_paths(&[dir.path().to_path_buf()]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.workload_entries[0].name(), "w");
}

/// A FIFO would block the reader forever, a symlink to `/dev/zero` would fill memory: neither is opened. Both,
/// and a socket, are skipped and named; the rest of the directory loads.
#[test]
fn fifos_devices_and_sockets_are_skipped_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    fs::write(root.join("a.yaml"), workload_entry("a")).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(root.join("fifo.yaml"))
        .status()
        .unwrap();
    assert!(status.success());
    std::os::unix::fs::symlink("/dev/zero", root.join("zero.yaml")).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(root.join("socket.yaml")).unwrap();
    let config = within(GENEROUS, {
        let root = root.clone();
        move || spec::load_paths(&[root])
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.workload_entries.len(), 1);
    let skipped: Vec<(String, String)> = config
        .skipped
        .iter()
        .map(|s| {
            (
                s.file.file_name().unwrap().to_string_lossy().into_owned(),
                s.message.clone(),
            )
        })
        .collect();
    assert_eq!(skipped.len(), 3, "{skipped:#?}");
    for (name, what) in [
        ("fifo.yaml", "a FIFO"),
        ("socket.yaml", "a socket"),
        ("zero.yaml", "a device"),
    ] {
        assert!(
            skipped.iter().any(|(n, m)| n == name && m.contains(what)),
            "{name}: {skipped:#?}"
        );
    }
    assert!(config
        .skipped
        .iter()
        .all(|s| s.code == "SY0005" && s.line == 1));
    // Named explicitly, a FIFO is skipped just the same.
    let config = within(GENEROUS, move || {
        spec::load_paths(&[root.join("fifo.yaml")])
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.skipped.len(), 1);
}

#[test]
fn a_file_over_the_size_limit_is_an_error_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let big = format!("{}# {}\n", workload_entry("w"), "x".repeat(2000));
    fs::write(dir.path().join("big.yaml"), big).unwrap();
    let options = spec::LoadOptions {
        max_file_size: 1024,
    };
    let errors = spec::load_paths_with(&[dir.path().to_path_buf()], &options)
        .expect_err("too big")
        .0;
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!((errors[0].code.as_str(), errors[0].line), ("SY0001", 1));
    assert!(
        errors[0].message.contains("1024") && errors[0].message.contains("--max-file-size"),
        "{}",
        errors[0]
    );
    assert!(spec::load_paths(&[dir.path().to_path_buf()]).is_ok());
}

#[test]
fn a_directory_symlink_loop_is_named_once_and_files_load_once() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.yaml"), workload_entry("a")).unwrap();
    fs::create_dir(dir.path().join("sub")).unwrap();
    fs::write(dir.path().join("sub/b.yaml"), workload_entry("b")).unwrap();
    std::os::unix::fs::symlink(".", dir.path().join("loop")).unwrap();
    std::os::unix::fs::symlink("..", dir.path().join("sub/up")).unwrap();
    let root = dir.path().to_path_buf();
    let config =
        within(GENEROUS, move || spec::load_paths(&[root])).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = config.workload_entries.iter().map(|w| w.name()).collect();
    assert_eq!(names, ["a", "b"]);
    let skipped: Vec<String> = config.skipped.iter().map(|s| s.to_string()).collect();
    assert_eq!(skipped.len(), 2, "{skipped:#?}");
    assert!(
        skipped[0].contains("/loop") && skipped[0].contains("symlink loop"),
        "{skipped:#?}"
    );
    assert!(skipped[1].contains("sub/up"), "{skipped:#?}");
}

#[test]
fn a_top_level_list_is_a_clear_error() {
    let text = format!(
        "# a list of resources, as kubectl would not take it\n- {}",
        workload_entry("w").replace('\n', "\n  ")
    );
    let e = one_error("list.yaml", &text);
    assert_eq!((e.code.as_str(), e.line), ("SY0001", 2));
    assert!(
        e.message.contains("a list") && !e.message.contains("<missing>"),
        "{e}"
    );
    let e = one_error("scalar.yaml", "just text\n");
    assert!(e.message.contains("a string"), "{e}");
}

#[test]
fn every_read_error_has_a_line_number() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = workload_entry("w").into_bytes();
    let third_line = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(1)
        .unwrap()
        .0
        + 1;
    bytes.insert(third_line + 3, 0xff);
    fs::write(dir.path().join("latin1.yaml"), bytes).unwrap();
    std::os::unix::fs::symlink("nowhere.yaml", dir.path().join("dangling.yaml")).unwrap();
    let errors = spec::load_paths(&[dir.path().to_path_buf(), PathBuf::from("/nonexistent/x")])
        .expect_err("fails")
        .0;
    let lines: Vec<(String, usize)> = errors
        .iter()
        .map(|e| {
            (
                e.file.file_name().unwrap().to_string_lossy().into_owned(),
                e.line,
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("x".to_string(), 1),
            ("dangling.yaml".to_string(), 1),
            ("latin1.yaml".to_string(), 3)
        ],
        "{errors:#?}"
    );
    assert!(errors[2].message.contains("UTF-8"), "{}", errors[2]);
}

/// 40,000 levels of nesting took serde_yaml seconds (quadratic); a pre-scan rejects them at once, naming the
/// file and the line where the limit is crossed.
#[test]
fn deeply_nested_yaml_is_rejected_quickly_naming_file_and_line() {
    let flow = format!(
        "{}spec: {}\n",
        workload_entry("w").replace("spec:\n  address: 127.0.0.9\n", ""),
        "[".repeat(40_000)
    );
    let e = within(GENEROUS, move || one_error("flow.yaml", &flow));
    assert_eq!((e.code.as_str(), e.line), ("SY0001", 5), "{e}");
    assert!(e.message.contains("nested more than"), "{e}");

    let mut block = String::from("a:\n");
    for depth in 1..=40_000usize {
        block.push_str(&" ".repeat(depth.min(400)));
        block.push_str("- ");
        block.push_str(&"- ".repeat(depth / 400));
        block.push_str("x:\n");
    }
    let e = within(GENEROUS, move || one_error("block.yaml", &block));
    assert_eq!(e.code, "SY0001", "{e}");
    assert!(e.message.contains("nested more than"), "{e}");
    assert!(e.line > 1 && e.line < 200, "{e}");

    // Istio resources nest a dozen levels; fifty are fine.
    let fine = format!(
        "{}  x: {}{}\n",
        workload_entry("w"),
        "[".repeat(50),
        "]".repeat(50)
    );
    let e = one_error("fine.yaml", &fine);
    assert!(!e.message.contains("nested"), "{e}");
}

/// A 5 MB wrong value is shown as its beginning and its size, not echoed whole.
#[test]
fn long_values_are_shortened_in_messages() {
    let long = "x".repeat(5_000_000);
    let text = format!("{}  ports:\n    http: \"{long}\"\n", workload_entry("w"));
    let e = one_error("long.yaml", &text);
    let shown = e.to_string();
    assert!(
        shown.len() < 1_000,
        "{} bytes: {}",
        shown.len(),
        &shown[..300]
    );
    assert!(shown.contains("xxxxxxxxxx… (5000000 bytes)"), "{shown}");
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

/// Inputs the `spec_load` fuzz target found (docs/fuzzing.md), kept as regressions: every error names a line
/// inside the file.
#[test]
fn fuzz_found_inputs_name_lines_inside_the_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/spec_load");
    let mut seen = 0;
    for entry in fs::read_dir(&dir).expect("tests/fuzz/spec_load") {
        let path = entry.expect("entry").path();
        let text = String::from_utf8_lossy(&fs::read(&path).expect("read")).into_owned();
        // An error at the end of input names the line after the last line break, as editors show it.
        let lines = text.split('\n').count();
        if let Err(errors) = spec::load_str(&path, &text) {
            for e in &errors.0 {
                assert!(
                    (1..=lines).contains(&e.line),
                    "{}: line {} of {lines}: {e}",
                    path.display(),
                    e.line
                );
            }
        }
        seen += 1;
    }
    assert!(seen > 0);
}
