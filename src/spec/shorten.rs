//! Long user values cut short in messages: a 5 MB wrong value must not be echoed whole into an error, the log
//! and `/debug/config`.

/// Longest quoted value (or unquoted message) shown in full, in characters.
const VALUE_CHARS: usize = 100;
/// Longest message, in bytes, after values are shortened.
const MESSAGE_BYTES: usize = 1000;

/// `text` with every quoted part (between `"` or backticks) longer than 100 characters shown as its first 100
/// and its size (`xxxx… (5000000 bytes)`), and the whole cut the same way beyond 1000 bytes.
pub fn shorten(text: &str) -> String {
    if text.len() <= VALUE_CHARS {
        return text.to_owned();
    }
    let mut out = String::with_capacity(MESSAGE_BYTES.min(text.len()));
    let mut open: Option<char> = None;
    let mut part_start = 0;
    for (i, c) in text.char_indices() {
        let part = &text[part_start..i];
        match open {
            None if c == '"' || c == '`' => {
                out.push_str(part);
                open = Some(c);
            }
            Some(q) if c == q => {
                out.push_str(&cut(part, VALUE_CHARS));
                open = None;
            }
            _ => continue,
        }
        out.push(c);
        part_start = i + c.len_utf8();
    }
    let rest = &text[part_start..];
    out.push_str(&match open {
        Some(_) => cut(rest, VALUE_CHARS),
        None => rest.to_owned(),
    });
    if out.len() > MESSAGE_BYTES {
        return cut(&out, MESSAGE_BYTES);
    }
    out
}

/// A value shown on its own (a resource name, a field path): its first 100 characters and its size when
/// longer.
pub fn shorten_value(value: &str) -> String {
    cut(value, VALUE_CHARS)
}

/// `s` itself, or its first `chars` characters followed by `… (N bytes)`.
fn cut(s: &str, chars: usize) -> String {
    match s.char_indices().nth(chars) {
        None => s.to_owned(),
        Some((end, _)) => format!("{}… ({} bytes)", &s[..end], s.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_unchanged() {
        let m = "invalid type: string \"abc\", expected u32";
        assert_eq!(shorten(m), m);
    }

    #[test]
    fn long_quoted_values_keep_their_start_and_size() {
        let value = "é".repeat(3000);
        let m = format!("unknown host `{value}`; and \"short\" stays");
        let s = shorten(&m);
        assert_eq!(
            s,
            format!(
                "unknown host `{}… (6000 bytes)`; and \"short\" stays",
                "é".repeat(100)
            )
        );
    }

    #[test]
    fn unquoted_text_is_only_cut_as_a_whole() {
        let m = format!("{} `x`", "plain words ".repeat(20));
        assert_eq!(shorten(&m), m);
        assert_eq!(
            shorten_value(&"n".repeat(150)),
            format!("{}… (150 bytes)", "n".repeat(100))
        );
    }

    #[test]
    fn a_long_message_is_cut_too() {
        let m = "word ".repeat(10_000);
        let s = shorten(&m);
        assert!(s.len() < 1_100, "{}", s.len());
        assert!(s.ends_with("… (50000 bytes)"), "{s}");
    }
}
