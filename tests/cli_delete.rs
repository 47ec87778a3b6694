//! `switchyard delete` through the real binary, on a copy of the spec directory.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/istio-bookinfo");

struct Spec {
    tmp: tempfile::TempDir,
}

impl Spec {
    /// A copy of the repository's `config/` in `<tmp>/config`; commands run from `<tmp>`.
    fn new() -> Spec {
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join("config");
        fs::create_dir(&config).unwrap();
        for entry in fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("config")).unwrap() {
            let path = entry.unwrap().path();
            fs::copy(&path, config.join(path.file_name().unwrap())).unwrap();
        }
        Spec { tmp }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::cargo_bin("switchyard")
            .unwrap()
            .current_dir(self.tmp.path())
            .args(args)
            .output()
            .unwrap()
    }

    fn config(&self) -> PathBuf {
        self.tmp.path().join("config")
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.tmp.path().join(name);
        fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        fs::read_dir(self.config())
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                let bytes = fs::read(&path).unwrap();
                (path, bytes)
            })
            .collect()
    }
}

fn sample(name: &str) -> String {
    format!("{SAMPLES}/{name}")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn assert_refused(spec: &Spec, args: &[&str], expected: &[&str]) {
    let before = spec.snapshot();
    let out = spec.run(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    for text in expected {
        assert!(err.contains(text), "{args:?}: expected {text:?} in:\n{err}");
    }
    assert_eq!(stdout(&out), "");
    assert_eq!(
        spec.snapshot(),
        before,
        "{args:?} changed the spec directory"
    );
}

#[test]
fn deleting_what_was_applied_removes_it_and_its_emptied_file() {
    let spec = Spec::new();
    let before = spec.snapshot();
    let out = spec.run(&["apply", "-f", &sample("virtual-service-all-v1.yaml")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = spec.run(&["delete", "-f", &sample("virtual-service-all-v1.yaml")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "virtualservice.networking.istio.io \"productpage\" deleted\n\
         virtualservice.networking.istio.io \"reviews\" deleted\n\
         virtualservice.networking.istio.io \"ratings\" deleted\n\
         virtualservice.networking.istio.io \"details\" deleted\n"
    );
    assert_eq!(spec.snapshot(), before);
}

#[test]
fn deleting_one_document_keeps_the_rest_of_its_file() {
    let spec = Spec::new();
    let path = spec.config().join("bookinfo-gateway.yaml");
    let original = fs::read_to_string(&path).unwrap();
    let input = spec.write(
        "bookinfo-vs.yaml",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: bookinfo\n",
    );
    let out = spec.run(&["delete", "-f", &input]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "virtualservice.networking.istio.io \"bookinfo\" deleted\n"
    );
    let cut = original
        .find("---\napiVersion: networking.istio.io/v1\nkind: VirtualService")
        .unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), original[..cut]);
}

#[test]
fn refuses_to_delete_a_rule_still_in_use() {
    let spec = Spec::new();
    let out = spec.run(&["apply", "-f", &sample("virtual-service-all-v1.yaml")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_refused(
        &spec,
        &["delete", "-f", &sample("destination-rule-all.yaml")],
        &[
            "Error [IST0101] (VirtualService default/reviews) config/virtual-service-all-v1.yaml:",
            "no DestinationRule defines subsets",
            "would not be valid without these resources; nothing was changed",
        ],
    );
}

#[test]
fn refuses_when_a_resource_is_not_found() {
    let spec = Spec::new();
    let input = spec.write(
        "two.yaml",
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: bookinfo-gateway\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: nope\n  namespace: other\n",
    );
    assert_refused(
        &spec,
        &["delete", "-f", &input],
        &[
            "Error (NotFound): virtualservice.networking.istio.io \"nope\" not found in namespace \"other\" of `config`",
            "--ignore-not-found",
        ],
    );
}

#[test]
fn ignore_not_found_deletes_the_others() {
    let spec = Spec::new();
    let input = spec.write(
        "two.yaml",
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: details\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: nope\n",
    );
    let out = spec.run(&["delete", "--ignore-not-found", "-f", &input]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "destinationrule.networking.istio.io \"details\" deleted\n"
    );
    let rules = fs::read_to_string(spec.config().join("destination-rule-all.yaml")).unwrap();
    assert!(!rules.contains("name: details"));
    assert!(rules.contains("name: ratings"));
}

#[test]
fn refuses_missing_inputs_and_bad_documents() {
    let spec = Spec::new();
    assert_refused(
        &spec,
        &["delete", "-f", "missing.yaml"],
        &["cannot read `missing.yaml`"],
    );
    let input = spec.write(
        "nameless.yaml",
        "apiVersion: networking.istio.io/v1\nkind: Gateway\n",
    );
    assert_refused(
        &spec,
        &["delete", "-f", &input],
        &["nameless.yaml:1: `metadata.name` is missing"],
    );
    let input = spec.write(
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n",
    );
    assert_refused(
        &spec,
        &["delete", "-f", &input],
        &["unsupported kind `Pod`"],
    );
    let out = spec.run(&[
        "delete",
        "-f",
        &sample("virtual-service-all-v1.yaml"),
        "--config",
        "nowhere",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("spec directory `nowhere` does not exist"));
}
