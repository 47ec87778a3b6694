//! `switchyard delete` through the real binary, on a copy of the spec directory.

mod support;

use std::fs;

use support::checkout::{assert_refused, sample_path as sample, stderr, stdout, Checkout};

#[test]
fn deleting_what_was_applied_removes_it_and_its_emptied_file() {
    let spec = Checkout::new();
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
    let spec = Checkout::new();
    let path = spec.config().join("bookinfo-gateway.yaml");
    let original = fs::read_to_string(&path).unwrap();
    let input = spec.write_arg(
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
    let spec = Checkout::new();
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
    let spec = Checkout::new();
    let input = spec.write_arg(
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
    let spec = Checkout::new();
    let input = spec.write_arg(
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
    let spec = Checkout::new();
    assert_refused(
        &spec,
        &["delete", "-f", "missing.yaml"],
        &["cannot read `missing.yaml`"],
    );
    let input = spec.write_arg(
        "nameless.yaml",
        "apiVersion: networking.istio.io/v1\nkind: Gateway\n",
    );
    assert_refused(
        &spec,
        &["delete", "-f", &input],
        &["nameless.yaml:1: `metadata.name` is missing"],
    );
    let input = spec.write_arg(
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
