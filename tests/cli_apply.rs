//! `switchyard apply` through the real binary, on a copy of the spec directory.

mod support;

use std::fs;

use support::checkout::{assert_refused, sample_text as sample, stderr, stdout, Checkout};

const REVIEWS_V9: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\nspec:\n  hosts:\n  - reviews\n  http:\n  - route:\n    - destination:\n        host: reviews\n        subset: v9\n";

#[test]
fn istio_task_steps_read_one_to_one() {
    let c = Checkout::new();
    let untouched = c.read("bookinfo-services.yaml");

    let out = c.run(&[
        "apply",
        "-f",
        "../shared/istio-bookinfo/virtual-service-all-v1.yaml",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "virtualservice.networking.istio.io/productpage created\n\
         virtualservice.networking.istio.io/reviews created\n\
         virtualservice.networking.istio.io/ratings created\n\
         virtualservice.networking.istio.io/details created\n"
    );
    // A new file named after the input, holding the input's documents (its trailing empty one aside).
    let all_v1 = sample("virtual-service-all-v1.yaml");
    assert_eq!(
        c.read("virtual-service-all-v1.yaml"),
        all_v1.strip_suffix("---\n").unwrap()
    );

    let out = c.run(&[
        "apply",
        "-f",
        "../shared/istio-bookinfo/virtual-service-reviews-test-v2.yaml",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "virtualservice.networking.istio.io/reviews configured\n"
    );
    // Replaced where it was defined, not added a second time.
    let all = c.read("virtual-service-all-v1.yaml");
    assert!(all.contains("exact: jason"));
    assert!(!c
        .config()
        .join("virtual-service-reviews-test-v2.yaml")
        .exists());
    assert_eq!(
        all.replace(&sample("virtual-service-reviews-test-v2.yaml"), ""),
        all_v1
            .strip_suffix("---\n")
            .unwrap()
            .replace(reviews_doc_of_all_v1().as_str(), "")
    );

    let before = c.snapshot();
    let out = c.run(&[
        "apply",
        "-f",
        "../shared/istio-bookinfo/virtual-service-reviews-test-v2.yaml",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out),
        "virtualservice.networking.istio.io/reviews unchanged\n"
    );
    assert_eq!(c.snapshot(), before);

    for step in [
        "virtual-service-ratings-test-delay.yaml",
        "virtual-service-ratings-test-abort.yaml",
        "virtual-service-reviews-50-v3.yaml",
        "virtual-service-reviews-v3.yaml",
    ] {
        let out = c.run(&["apply", "-f", &format!("../shared/istio-bookinfo/{step}")]);
        assert_eq!(out.status.code(), Some(0), "{step}: {}", stderr(&out));
        assert!(
            stdout(&out).ends_with(" configured\n"),
            "{step}: {}",
            stdout(&out)
        );
    }
    assert_eq!(c.read("bookinfo-services.yaml"), untouched);
    // No temporary file is left behind, and the result validates.
    assert!(c
        .snapshot()
        .keys()
        .all(|p| !p.to_string_lossy().ends_with(".tmp")));
    let out = c.run(&["validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

/// The `reviews` document of virtual-service-all-v1.yaml, separator included.
fn reviews_doc_of_all_v1() -> String {
    let all = sample("virtual-service-all-v1.yaml");
    let start = all.find("---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews").unwrap();
    let end = start + 4 + all[start + 4..].find("---\n").unwrap();
    all[start + 4..end].to_owned()
}

#[test]
fn a_new_resource_goes_to_a_file_named_after_the_input() {
    let c = Checkout::new();
    let out = c.run(&[
        "apply",
        "-f",
        "../shared/istio-bookinfo/virtual-service-reviews-test-v2.yaml",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "virtualservice.networking.istio.io/reviews created\n"
    );
    assert_eq!(
        c.read("virtual-service-reviews-test-v2.yaml"),
        sample("virtual-service-reviews-test-v2.yaml")
    );
}

#[test]
fn replacing_one_document_keeps_the_others_and_their_comments() {
    let c = Checkout::new();
    let original = c.read("destination-rule-all.yaml");
    let old_reviews = "  name: reviews\nspec:\n  host: reviews\n  subsets:\n  - name: v1\n    labels:\n      version: v1\n  - name: v2\n    labels:\n      version: v2\n  - name: v3\n    labels:\n      version: v3\n";
    assert!(original.contains(old_reviews));
    let new_doc = "# reviews gets a v4 nobody runs yet\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: reviews\nspec:\n  host: reviews\n  subsets:\n  - name: v1\n    labels:\n      version: v1\n  - name: v4\n    labels:\n      version: v4\n";
    let input = c.write("reviews-dr.yaml", new_doc);
    let out = c.run(&["apply", "-f", input.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "destinationrule.networking.istio.io/reviews configured\n"
    );
    // Warnings about the applied resource are shown; the sample's other warnings are not.
    let err = stderr(&out);
    assert!(
        err.contains("Warning [SY0102] (DestinationRule default/reviews)"),
        "{err}"
    );
    assert!(!err.contains("default/ratings"), "{err}");

    let doc_start = original
        .find(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: reviews",
        )
        .unwrap();
    let doc_end = original.find(old_reviews).unwrap() + old_reviews.len();
    let expected = format!(
        "{}{}{}",
        &original[..doc_start],
        new_doc,
        &original[doc_end..]
    );
    assert_eq!(c.read("destination-rule-all.yaml"), expected);
    assert!(expected.starts_with("# Copied verbatim from Istio"));
}

#[test]
fn refuses_invalid_yaml() {
    let c = Checkout::new();
    let input = c.write(
        "broken.yaml",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x\n",
    );
    assert_refused(
        &c,
        &["apply", "-f", input.to_str().unwrap()],
        &["Error [SY0001]", "broken.yaml:", "nothing was changed"],
    );
}

#[test]
fn refuses_an_unknown_field() {
    let c = Checkout::new();
    let input = c.write(
        "typo.yaml",
        &REVIEWS_V9.replace("subset: v9", "subset: v1\n        weigth: 100"),
    );
    assert_refused(
        &c,
        &["apply", "-f", input.to_str().unwrap()],
        &[
            "Error [SY0003] (VirtualService default/reviews)",
            "typo.yaml:",
            "unknown field `weigth`",
            "is not valid; nothing was changed",
        ],
    );
}

#[test]
fn refuses_a_field_not_supported_yet() {
    let c = Checkout::new();
    assert_refused(
        &c,
        &[
            "apply",
            "-f",
            "../shared/istio-bookinfo/destination-rule-all-mtls.yaml",
        ],
        &[
            "Error [SY0004]",
            "spec.trafficPolicy.tls",
            "not supported yet",
        ],
    );
}

#[test]
fn refuses_a_merged_result_with_errors_pointing_at_the_input() {
    let c = Checkout::new();
    let input = c.write("reviews-v9.yaml", REVIEWS_V9);
    assert_refused(
        &c,
        &["apply", "-f", "reviews-v9.yaml"],
        &[
            // The resource would land in config/reviews-v9.yaml; the error points where the user wrote it.
            "Error [IST0101] (VirtualService default/reviews) reviews-v9.yaml:12 spec.http[0].route[0].destination.subset: subset `v9`",
            "the spec directory `config` would not be valid with these resources; nothing was changed",
        ],
    );
    assert!(input.exists());
    let out = c.run(&["apply", "-f", "reviews-v9.yaml"]);
    assert!(
        !stderr(&out).contains("Warning ["),
        "only errors explain a refusal"
    );
}

#[test]
fn refuses_when_a_later_file_breaks_the_result() {
    let c = Checkout::new();
    c.write("reviews-v9.yaml", REVIEWS_V9);
    assert_refused(
        &c,
        &[
            "apply",
            "-f",
            "../shared/istio-bookinfo/virtual-service-all-v1.yaml",
            "-f",
            "reviews-v9.yaml",
        ],
        &["Error [IST0101]", "subset `v9`"],
    );
}

#[test]
fn refuses_sidecars_the_server_would_reject() {
    // Two Sidecars without a selector in one namespace: the server rejects the reading, so apply must too.
    let c = Checkout::new();
    c.write(
        "sidecars.yaml",
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: first\nspec:\n  egress:\n  - hosts: [\"./*\"]\n---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: second\nspec:\n  egress:\n  - hosts: [\"./*\"]\n",
    );
    assert_refused(
        &c,
        &["apply", "-f", "sidecars.yaml"],
        &[
            "Error [IST0111]",
            "the spec directory `config` would not be valid with these resources; nothing was changed",
        ],
    );
}

#[test]
fn refuses_a_missing_file() {
    let c = Checkout::new();
    assert_refused(
        &c,
        &["apply", "-f", "no-such-file.yaml"],
        &["cannot read `no-such-file.yaml`"],
    );
}

#[test]
fn refuses_a_missing_spec_directory() {
    let c = Checkout::new();
    let out = c.run(&[
        "apply",
        "-f",
        "../shared/istio-bookinfo/virtual-service-all-v1.yaml",
        "--config",
        "elsewhere",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("spec directory `elsewhere` does not exist"),
        "{}",
        stderr(&out)
    );
    assert!(!c.main.join("elsewhere").exists());
}

#[test]
fn refuses_a_file_without_resources() {
    let c = Checkout::new();
    let input = c.write("empty.yaml", "# nothing\n---\n");
    assert_refused(
        &c,
        &["apply", "-f", input.to_str().unwrap()],
        &["no resources found"],
    );
}

#[test]
fn refuses_a_directory_that_is_already_broken() {
    let c = Checkout::new();
    fs::write(
        c.config().join("typo.yaml"),
        REVIEWS_V9
            .replace("hosts:", "hostz:")
            .replace("name: reviews", "name: other"),
    )
    .unwrap();
    assert_refused(
        &c,
        &[
            "apply",
            "-f",
            "../shared/istio-bookinfo/virtual-service-all-v1.yaml",
        ],
        &["Error [SY0003]", "config/typo.yaml:", "hostz"],
    );
}

/// `apply` and the server read the same files: an editor's lock link (Emacs's `.#x.yaml` is a symlink to a
/// file that does not exist) and a hidden YAML file (a backup, a swap file) are in neither's set. Were `apply` to
/// read them, it would fail on the link, or replace a resource in a file the server never serves.
#[cfg(unix)]
#[test]
fn apply_reads_the_files_the_server_reads() {
    let c = Checkout::new();
    std::os::unix::fs::symlink(
        "user@host.12345:1700000000",
        c.config().join(".#virtual-service-all-v1.yaml"),
    )
    .unwrap();
    // The same resource `apply` is about to write, in a file the server ignores.
    let hidden = c.config().join(".reviews.yaml");
    fs::write(&hidden, REVIEWS_V9).unwrap();
    let served_names = || -> Vec<String> {
        let resolved = switchyard::control_plane::read_mesh(&[c.config()]).unwrap();
        resolved
            .mesh
            .virtual_services
            .iter()
            .map(|vs| vs.meta.resource.name.clone())
            .collect()
    };
    let reviews = || served_names().contains(&"reviews".to_owned());
    assert!(!reviews());

    let out = c.run(&[
        "apply",
        "-f",
        "../shared/istio-bookinfo/virtual-service-reviews-test-v2.yaml",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "virtualservice.networking.istio.io/reviews created\n"
    );
    assert!(reviews());
    assert_eq!(fs::read_to_string(&hidden).unwrap(), REVIEWS_V9);
}

const RATINGS_FIRST: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: first\nspec:\n  hosts:\n  - ratings\n  http:\n  - route:\n    - destination:\n        host: ratings\n        subset: v1\n";

/// Every line a diagnostic names is the line in the file on disk: replacing a long document by a short one
/// moves the documents below it only in memory (`validate` and `apply` agree).
#[test]
fn errors_below_an_edited_document_name_their_line_on_disk() {
    let c = Checkout::new();
    let long_first = RATINGS_FIRST.replace(
        "spec:\n",
        "spec:\n  # one\n  # two\n  # three\n  # four\n  # five\n",
    );
    let other = REVIEWS_V9
        .replace("hosts:", "hostz:")
        .replace("name: reviews", "name: other");
    fs::write(
        c.config().join("typo.yaml"),
        format!("{long_first}---\n{other}"),
    )
    .unwrap();
    let disk_line = long_first.lines().count() + 1 + 6;
    assert_eq!(
        c.read("typo.yaml").lines().nth(disk_line - 1),
        Some("  hostz:")
    );
    let validate = c.run(&["validate"]);
    assert!(
        stdout(&validate).contains(&format!("typo.yaml:{disk_line}")),
        "{}",
        stdout(&validate)
    );
    let input = c.write_arg("first.yaml", RATINGS_FIRST);
    assert_refused(
        &c,
        &["apply", "-f", &input],
        &[&format!("typo.yaml:{disk_line} ")],
    );
}

/// `apply -f -` reads standard input (as `kubectl apply -f - <<EOF` in Istio's docs); its resources go to
/// `stdin.yaml` unless the directory already defines them, and its errors name `<stdin>`.
#[test]
fn apply_reads_standard_input() {
    let c = Checkout::new();
    let out = assert_cmd::Command::cargo_bin("switchyard")
        .unwrap()
        .current_dir(&c.main)
        .args(["apply", "-f", "-"])
        .write_stdin(RATINGS_FIRST)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "virtualservice.networking.istio.io/first created\n"
    );
    assert_eq!(c.read("stdin.yaml"), RATINGS_FIRST);

    let out = assert_cmd::Command::cargo_bin("switchyard")
        .unwrap()
        .current_dir(&c.main)
        .args(["apply", "-f", "-"])
        .write_stdin(RATINGS_FIRST.replace("hosts:", "hostz:"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("<stdin>:6"), "{}", stderr(&out));
}

/// `apply -f DIR` applies every YAML file of the directory, each as if given by name; `delete -f DIR` too.
#[test]
fn apply_and_delete_read_a_directory() {
    let c = Checkout::new();
    fs::create_dir(c.main.join("more")).unwrap();
    fs::write(c.main.join("more/first.yaml"), RATINGS_FIRST).unwrap();
    fs::write(
        c.main.join("more/second.yml"),
        RATINGS_FIRST
            .replace("name: first", "name: second")
            .replace("ratings", "details"),
    )
    .unwrap();
    fs::write(c.main.join("more/notes.txt"), "not a spec").unwrap();
    let out = c.run(&["apply", "-f", "more"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "virtualservice.networking.istio.io/first created\nvirtualservice.networking.istio.io/second created\n"
    );
    assert!(c.config().join("first.yaml").exists() && c.config().join("second.yml").exists());
    let out = c.run(&["delete", "-f", "more"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!c.config().join("first.yaml").exists());
}

/// Outside the repository root, `validate` and `proxy-config` explain what `apply` explains.
#[test]
fn a_missing_spec_directory_is_explained_by_every_command() {
    let c = Checkout::new();
    let elsewhere = c.main.join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let run = |args: &[&str]| {
        assert_cmd::Command::cargo_bin("switchyard")
            .unwrap()
            .current_dir(&elsewhere)
            .args(args)
            .output()
            .unwrap()
    };
    for args in [
        &["validate"][..],
        &["proxy-config", "routes", "reviews-v2"],
        &["proxy-config", "route", "reviews-v2", "-o", "json"],
        &["proxy-config", "cluster", "reviews-v2", "--json"],
        &["bootstrap", "--workload", "reviews-v2"],
        &[
            "apply",
            "-f",
            "../../shared/istio-bookinfo/virtual-service-all-v1.yaml",
        ],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains(
                "spec directory `config` does not exist or is not a directory (create it, or pass"
            ),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

/// `-o json|yaml` on every command that prints, as in istioctl and kubectl (`--json` still works where it did).
#[test]
fn commands_that_print_take_output_formats() {
    let c = Checkout::new();
    let input = c.write_arg("first.yaml", RATINGS_FIRST);
    let json = |out: &std::process::Output| -> serde_json::Value {
        assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
        serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
    };
    let applied = json(&c.run(&["apply", "-f", &input, "-o", "json"]));
    assert_eq!(applied[0]["name"], "first", "{applied}");
    assert_eq!(applied[0]["result"], "created", "{applied}");
    assert_eq!(applied[0]["type"], "virtualservice.networking.istio.io");
    let out = c.run(&["apply", "-f", &input, "-o", "yaml"]);
    assert!(
        stdout(&out).contains("result: unchanged"),
        "{}",
        stdout(&out)
    );
    let deleted = json(&c.run(&["delete", "-f", &input, "-o", "json"]));
    assert_eq!(deleted[0]["result"], "deleted", "{deleted}");
    let bootstrap = json(&c.run(&["bootstrap", "--workload", "reviews-v2", "-o", "json"]));
    assert_eq!(
        bootstrap["node"]["id"],
        "sidecar~127.0.4.1~reviews-v2.default~default.svc.cluster.local"
    );
    for flag in [&["-o", "json"][..], &["--json"]] {
        let out = c.run(&[&["validate"][..], flag].concat());
        assert!(json(&out).is_array(), "{flag:?}");
    }
}
