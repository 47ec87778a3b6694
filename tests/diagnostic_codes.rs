//! `docs/diagnostics.md` lists every diagnostic code as `mesh::Code` declares it. The table is generated:
//! `SWITCHYARD_BLESS=1 cargo test --test diagnostic_codes` rewrites it after a change to the catalogue.

use std::fs;
use std::path::Path;

const BEGIN: &str = "<!-- generated from switchyard::mesh::Code by tests/diagnostic_codes.rs -->\n";
const END: &str = "<!-- end of generated table -->\n";

#[test]
fn the_docs_table_is_the_catalogue() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/diagnostics.md");
    let text = fs::read_to_string(&path).expect("read docs/diagnostics.md");
    let start = text.find(BEGIN).expect("begin marker") + BEGIN.len();
    let end = start + text[start..].find(END).expect("end marker");
    let table = switchyard::mesh::diagnostic_codes_table();
    if std::env::var_os("SWITCHYARD_BLESS").is_some_and(|v| v == "1") {
        let updated = format!("{}{table}{}", &text[..start], &text[end..]);
        fs::write(&path, updated).expect("write docs/diagnostics.md");
        return;
    }
    assert_eq!(
        &text[start..end],
        table,
        "docs/diagnostics.md is out of date: run SWITCHYARD_BLESS=1 cargo test --test diagnostic_codes"
    );
}
