//! The loader and the validator on any text: they may reject it, never panic, and every error they report
//! names a line in the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::{mesh, spec};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.lines().count().max(1);
    match spec::load_str("fuzz.yaml", text) {
        Err(errors) => {
            for e in &errors.0 {
                assert!(e.line <= lines + 1, "line {} past the end ({lines}): {e}", e.line);
            }
        }
        Ok(config) => {
            if let Err(diagnostics) = mesh::resolve(&config) {
                assert!(
                    diagnostics.iter().any(mesh::Diagnostic::is_error),
                    "a rejection without an error"
                );
            }
        }
    }
});
