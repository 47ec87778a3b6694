//! `switchyard validate` through the real binary.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn sample(name: &str) -> PathBuf {
    root().join("../shared/istio-bookinfo").join(name)
}

fn switchyard() -> Command {
    let mut cmd = Command::cargo_bin("switchyard").unwrap();
    cmd.current_dir(root());
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The spec directory's files, without the one a sample of the same name would duplicate.
fn config_files_except(name: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("config"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml") && p.file_name().unwrap() != name)
        .collect();
    files.sort();
    files
}

#[test]
fn the_default_spec_directory_has_no_errors() {
    let out = switchyard().arg("validate").output().unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        !stdout.is_empty(),
        "the sample's unused subsets are warnings"
    );
    for line in stdout.lines() {
        assert!(line.starts_with("Warning ["), "{line}");
    }
    // Istio's destination-rule-all defines ratings v2, which no workload here has.
    assert!(stdout.contains(
        "Warning [SY0102] (DestinationRule default/ratings) config/destination-rule-all.yaml:"
    ));
}

#[test]
fn every_task_sample_validates_against_the_spec_directory() {
    for name in [
        "virtual-service-all-v1.yaml",
        "virtual-service-reviews-test-v2.yaml",
        "virtual-service-ratings-test-delay.yaml",
        "virtual-service-ratings-test-abort.yaml",
        "virtual-service-reviews-50-v3.yaml",
        "virtual-service-reviews-v3.yaml",
        "destination-rule-all.yaml",
        "bookinfo-gateway.yaml",
    ] {
        let out = switchyard()
            .arg("validate")
            .args(config_files_except(name))
            .arg(sample(name))
            .output()
            .unwrap();
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{name}:\n{stdout}");
        assert!(!stdout.contains("Error ["), "{name}:\n{stdout}");
    }
}

#[test]
fn mutual_tls_is_a_clear_not_supported_error() {
    let out = switchyard()
        .args([
            "validate",
            "config/bookinfo-services.yaml",
            "config/bookinfo-workloads.yaml",
        ])
        .arg(sample("destination-rule-all-mtls.yaml"))
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    let errors: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("Error ["))
        .collect();
    assert_eq!(errors.len(), 4, "{stdout}");
    for line in &errors {
        assert!(line.contains("destination-rule-all-mtls.yaml:"), "{line}");
        assert!(line.contains("spec.trafficPolicy.tls"), "{line}");
        assert!(line.contains("not supported yet"), "{line}");
    }
    assert!(stdout.contains("(DestinationRule default/reviews)"));
}

#[test]
fn a_clean_configuration_says_so_on_stderr_only() {
    let out = switchyard()
        .args([
            "validate",
            "config/bookinfo-services.yaml",
            "config/bookinfo-workloads.yaml",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "");
    assert!(text(&out.stderr).contains("✔ No validation issues found when analyzing config/bookinfo-services.yaml, config/bookinfo-workloads.yaml."));
}

#[test]
fn load_errors_and_resolution_errors_print_in_one_format() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = dir.path().join("unknown-field.yaml");
    std::fs::write(
        &unknown,
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: x\nspec:\n  hosts: [x]\n  htp: []\n",
    )
    .unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "# c\nkind: [\n").unwrap();
    let out = switchyard()
        .arg("validate")
        .args([&unknown, &broken, &dir.path().join("missing.yaml")])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout.contains(&format!(
            "Error [SY0003] (VirtualService default/x) {}:7 spec.htp: ",
            unknown.display()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("unknown field `htp`"));
    assert!(
        stdout.contains(&format!("Error [SY0001] {}:", broken.display())),
        "{stdout}"
    );
    assert!(stdout.contains("missing.yaml"), "{stdout}");
    assert_eq!(stdout.lines().count(), 3, "{stdout}");

    let out = switchyard()
        .args(["validate", "config"])
        .arg(sample("virtual-service-reviews-v3.yaml"))
        .arg(dir.path().join("nothing-here"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).starts_with("Error [SY0001]"));
}

fn undefined_subset(dir: &Path) -> PathBuf {
    let path = dir.join("reviews-v9.yaml");
    std::fs::write(
        &path,
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\nspec:\n  hosts:\n  - reviews\n  http:\n  - route:\n    - destination:\n        host: reviews\n        subset: v9\n",
    )
    .unwrap();
    path
}

#[test]
fn json_output_is_the_diagnostic_list() {
    let dir = tempfile::tempdir().unwrap();
    let bad = undefined_subset(dir.path());
    let out = switchyard()
        .args(["validate", "-o", "json", "config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = list.as_array().unwrap();
    let error = list
        .iter()
        .find(|d| d["severity"] == "Error")
        .expect("an error");
    assert_eq!(error["code"], "IST0101");
    assert_eq!(error["field"], "spec.http[0].route[0].destination.subset");
    assert_eq!(error["file"], bad.display().to_string());
    // The line of the field itself, `subset: v9`.
    assert_eq!(error["line"], 12);
    assert_eq!(error["resource"]["kind"], "VirtualService");
    assert_eq!(error["resource"]["name"], "reviews");
    assert!(list.iter().any(|d| d["severity"] == "Warning"));

    let out = switchyard()
        .args([
            "validate",
            "--output",
            "json",
            "config/bookinfo-services.yaml",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout).trim(), "[]");
}

#[test]
fn yaml_output_is_the_same_list() {
    let dir = tempfile::tempdir().unwrap();
    let bad = undefined_subset(dir.path());
    let out = switchyard()
        .args(["validate", "-o", "yaml", "config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let list: serde_yaml::Value = serde_yaml::from_slice(&out.stdout).unwrap();
    let list = list.as_sequence().unwrap();
    assert!(list
        .iter()
        .any(|d| d["code"].as_str() == Some("IST0101") && d["severity"].as_str() == Some("Error")));
}

/// A FIFO named like a spec used to hang `validate` (opening it blocks until a writer comes). It is skipped
/// with a warning naming it; the rest is validated.
#[test]
fn validate_does_not_hang_on_a_fifo() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(root().join("config")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let status = std::process::Command::new("mkfifo")
        .arg(dir.path().join("x.yaml"))
        .status()
        .unwrap();
    assert!(status.success());
    let out = switchyard()
        .arg("validate")
        .arg(dir.path())
        .timeout(std::time::Duration::from_secs(20))
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.lines().any(|l| l.starts_with("Warning [SY0005]")
            && l.contains("x.yaml:1")
            && l.contains("a FIFO")),
        "{stdout}"
    );
}
