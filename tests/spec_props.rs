//! Loading and field location never panic, whatever the text.

use proptest::prelude::*;
use switchyard::spec;

proptest! {
    #[test]
    fn field_line_never_panics(text in "([ -~]{0,12}\n){0,12}", path in "[a-z]{1,5}(\\[[0-9]\\])?(\\.[a-zA-Z-]{1,5}(\\[[0-9]{1,2}\\])?){0,4}") {
        if let Some(line) = spec::field_line(&text, &path) {
            prop_assert!(line >= 1 && line <= text.lines().count());
        }
    }

    #[test]
    fn load_str_never_panics(text in "(---\n)?(apiVersion: networking.istio.io/v1\nkind: (VirtualService|ServiceEntry)\n)?([ -~]{0,30}\n){0,8}") {
        let _ = spec::load_str("p.yaml", &text);
    }
}
