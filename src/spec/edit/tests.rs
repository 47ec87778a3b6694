//! `apply`/`delete` editing, on directories held in memory.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::spec::{Kind, ResourceKey};

fn vs(name: &str, host: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {name}\nspec:\n  hosts:\n  - {host}\n"
    )
}

fn key(kind: Kind, name: &str) -> ResourceKey {
    ResourceKey {
        kind,
        namespace: "default".into(),
        name: name.into(),
    }
}

fn input(text: &str) -> Vec<InputDocument> {
    input_documents(Path::new("in.yaml"), text).unwrap()
}

fn dir(files: &[(&str, &str)]) -> SpecDir {
    SpecDir::from_texts(
        Path::new("cfg"),
        files
            .iter()
            .map(|(p, t)| (Path::new("cfg").join(p), t.to_string())),
    )
}

fn text_of(d: &SpecDir, name: &str) -> Option<String> {
    let path = Path::new("cfg").join(name);
    d.texts().find(|(p, _)| *p == path).and_then(|(_, t)| t)
}

#[test]
fn keys_default_the_namespace_and_skip_empty_documents() {
    assert_eq!(
        document_key(&vs("reviews", "reviews")).unwrap(),
        Some(key(Kind::VirtualService, "reviews"))
    );
    assert_eq!(document_key("# only a comment\n").unwrap(), None);
    let namespaced = "kind: Gateway\nmetadata:\n  name: gw\n  namespace: istio-system\n";
    assert_eq!(
        document_key(namespaced).unwrap().unwrap().namespace,
        "istio-system"
    );
    assert_eq!(
        document_key("kind: Deployment\nmetadata: {name: x}\n"),
        Err(KeyError::UnsupportedKind("Deployment".into()))
    );
    assert_eq!(document_key("kind: Gateway\n"), Err(KeyError::MissingName));
    assert!(matches!(document_key("a: [\n"), Err(KeyError::Yaml(_))));
    let deep = format!(
        "kind: Gateway\nmetadata: {{name: g}}\nspec: {}\n",
        "[".repeat(40_000)
    );
    assert_eq!(document_key(&deep), Err(KeyError::TooDeep(3)));
}

#[test]
fn input_documents_skip_empty_ones_and_name_bad_ones() {
    let text = format!("---\n# c\n---\n{}---\n", vs("a", "a"));
    let docs = input(&text);
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].first_line, 4);
    let err = input_documents(Path::new("in.yaml"), "kind: Gateway\n").unwrap_err();
    assert_eq!(err.to_string(), "in.yaml:1: `metadata.name` is missing");
}

#[test]
fn replace_keeps_other_documents_and_comments_byte_for_byte() {
    let original = format!(
        "# header comment\n{}--- # the reviews one\n# about reviews\n{}---\n{}",
        vs("a", "a"),
        vs("reviews", "old"),
        vs("c", "c")
    );
    let mut d = dir(&[("x.yaml", &original)]);
    let new = input(&vs("reviews", "new"));
    assert_eq!(
        d.apply(&new[0], Path::new("cfg/in.yaml")),
        Applied::Configured
    );
    let expected = format!(
        "# header comment\n{}--- # the reviews one\n{}---\n{}",
        vs("a", "a"),
        vs("reviews", "new"),
        vs("c", "c")
    );
    assert_eq!(text_of(&d, "x.yaml").unwrap(), expected);
    assert_eq!(
        d.changes(),
        vec![Change::Write {
            path: "cfg/x.yaml".into(),
            text: expected
        }]
    );
}

#[test]
fn same_content_is_unchanged_and_left_alone() {
    let original = format!("# keep me\n{}", vs("a", "a"));
    let mut d = dir(&[("x.yaml", &original)]);
    let reformatted = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec: {hosts: [a]}\n";
    assert_eq!(
        d.apply(&input(reformatted)[0], Path::new("cfg/in.yaml")),
        Applied::Unchanged
    );
    assert!(d.changes().is_empty());
}

#[test]
fn new_resources_go_to_the_target_file() {
    let mut d = dir(&[("x.yaml", &vs("a", "a"))]);
    let docs = input(&format!("{}---\n{}", vs("b", "b"), vs("c", "c")));
    let target = d.target_for(Path::new("../somewhere/in.yaml"));
    assert_eq!(target, Path::new("cfg/in.yaml"));
    for doc in &docs {
        assert_eq!(d.apply(doc, &target), Applied::Created);
    }
    assert_eq!(
        text_of(&d, "in.yaml").unwrap(),
        format!("{}---\n{}", vs("b", "b"), vs("c", "c"))
    );
    assert_eq!(text_of(&d, "x.yaml").unwrap(), vs("a", "a"));
    assert_eq!(d.changes().len(), 1);
    assert_eq!(
        d.target_for(Path::new("in.txt")),
        Path::new("cfg/in.txt.yaml")
    );
}

#[test]
fn append_to_existing_file_adds_separator_or_fills_trailing_empty_document() {
    let mut d = dir(&[
        (
            "no-newline.yaml",
            "# only\nkind: Gateway\nmetadata: {name: g}",
        ),
        ("trailing.yaml", &format!("{}---\n", vs("a", "a"))),
    ]);
    let doc = &input(&vs("b", "b"))[0];
    d.apply(doc, Path::new("cfg/no-newline.yaml"));
    assert_eq!(
        text_of(&d, "no-newline.yaml").unwrap(),
        format!(
            "# only\nkind: Gateway\nmetadata: {{name: g}}\n---\n{}",
            vs("b", "b")
        )
    );
    let doc = &input(&vs("c", "c"))[0];
    d.apply(doc, Path::new("cfg/trailing.yaml"));
    assert_eq!(
        text_of(&d, "trailing.yaml").unwrap(),
        format!("{}---\n{}", vs("a", "a"), vs("c", "c"))
    );
}

#[test]
fn crlf_files_stay_crlf() {
    let original =
        vs("a", "a").replace('\n', "\r\n") + "---\r\n" + &vs("b", "old").replace('\n', "\r\n");
    let mut d = dir(&[("x.yaml", &original)]);
    d.apply(&input(&vs("b", "new"))[0], Path::new("cfg/x.yaml"));
    d.apply(&input(&vs("c", "c"))[0], Path::new("cfg/x.yaml"));
    let text = text_of(&d, "x.yaml").unwrap();
    assert_eq!(text.matches('\n').count(), text.matches("\r\n").count());
    assert_eq!(
        text,
        format!(
            "{}---\n{}---\n{}",
            vs("a", "a"),
            vs("b", "new"),
            vs("c", "c")
        )
        .replace('\n', "\r\n")
    );
}

#[test]
fn delete_removes_documents_and_empty_files() {
    let original = format!("{}--- # b\n{}", vs("a", "a"), vs("b", "b"));
    let mut d = dir(&[
        ("x.yaml", &original),
        ("y.yaml", &format!("# lonely\n{}", vs("c", "c"))),
    ]);
    assert!(d.delete(&key(Kind::VirtualService, "a")));
    // The first document goes; the next one's separator carries a comment, so it stays.
    assert_eq!(
        text_of(&d, "x.yaml").unwrap(),
        format!("--- # b\n{}", vs("b", "b"))
    );
    assert!(d.delete(&key(Kind::VirtualService, "c")));
    assert!(!d.delete(&key(Kind::VirtualService, "zzz")));
    assert!(!d.delete(&key(Kind::Gateway, "b")));
    assert_eq!(
        d.changes(),
        vec![
            Change::Write {
                path: "cfg/x.yaml".into(),
                text: format!("--- # b\n{}", vs("b", "b"))
            },
            Change::Remove {
                path: "cfg/y.yaml".into()
            },
        ]
    );
    let mut d = dir(&[(
        "x.yaml",
        &format!("{}---\n{}---\n", vs("a", "a"), vs("b", "b")),
    )]);
    d.delete(&key(Kind::VirtualService, "a"));
    assert_eq!(
        text_of(&d, "x.yaml").unwrap(),
        format!("{}---\n", vs("b", "b"))
    );
    d.delete(&key(Kind::VirtualService, "b"));
    assert_eq!(text_of(&d, "x.yaml"), None);
}

#[test]
fn untouched_comment_only_files_are_not_removed() {
    let mut d = dir(&[("notes.yaml", "# nothing yet\n"), ("x.yaml", &vs("a", "a"))]);
    d.delete(&key(Kind::VirtualService, "a"));
    assert_eq!(
        d.changes(),
        vec![Change::Remove {
            path: "cfg/x.yaml".into()
        }]
    );
}

#[test]
fn source_of_maps_applied_lines_back_to_the_input() {
    let mut d = dir(&[(
        "x.yaml",
        &format!("{}---\n{}", vs("a", "a"), vs("b", "old")),
    )]);
    let docs = input_documents(
        Path::new("in.yaml"),
        &format!("# c\n---\n{}---\n{}", vs("b", "new"), vs("z", "z")),
    )
    .unwrap();
    d.apply(&docs[0], Path::new("cfg/in.yaml"));
    d.apply(&docs[1], Path::new("cfg/in.yaml"));
    // b's body starts on line 9 of x.yaml and line 3 of in.yaml.
    assert_eq!(
        d.source_of(Path::new("cfg/x.yaml"), 10),
        Some((PathBuf::from("in.yaml"), 4))
    );
    assert_eq!(
        d.source_of(Path::new("cfg/x.yaml"), 2),
        Some((PathBuf::from("cfg/x.yaml"), 2))
    );
    assert_eq!(
        d.source_of(Path::new("cfg/in.yaml"), 1),
        Some((PathBuf::from("in.yaml"), 11))
    );
}

/// Replacing a long document by a short one moves the documents below it up in memory; their diagnostics still
/// name the line in the file on disk (the line `validate` names, the one an editor shows).
#[test]
fn lines_below_an_edit_map_back_to_the_file_on_disk() {
    let long_b = format!("{}  - more\n  - and-more\n  - still-more\n", vs("b", "old"));
    let mut d = dir(&[("x.yaml", &format!("{long_b}---\n{}", vs("c", "c")))]);
    let docs = input(&vs("b", "new"));
    d.apply(&docs[0], Path::new("cfg/in.yaml"));
    // c's `hosts` entry, its 7th line: c starts on line 12 on disk, on line 9 in the edited text.
    let edited = text_of(&d, "x.yaml").unwrap();
    assert_eq!(edited.lines().nth(15 - 1), Some("  - c"), "{edited}");
    assert_eq!(
        d.source_of(Path::new("cfg/x.yaml"), 15),
        Some((PathBuf::from("cfg/x.yaml"), 18))
    );
}

#[test]
fn load_reads_the_edited_texts() {
    let mut d = dir(&[("x.yaml", &vs("a", "a"))]);
    d.apply(&input(&vs("b", "b"))[0], Path::new("cfg/new.yaml"));
    let config = d.load().unwrap();
    let names: Vec<_> = config
        .virtual_services
        .iter()
        .map(|v| v.name().to_owned())
        .collect();
    assert_eq!(names, vec!["b", "a"]);
    assert_eq!(
        config.virtual_services[0].origin.file,
        Path::new("cfg/new.yaml")
    );
}

#[test]
fn write_atomic_replaces_and_leaves_no_temporary() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("x.yaml");
    write_atomic(&path, b"one\n").unwrap();
    write_atomic(&path, b"two\n").unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "two\n");
    let names: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("x.yaml")]);
}
