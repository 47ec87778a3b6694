//! How deeply a YAML document nests, measured before it is parsed. libyaml (under serde_yaml) takes time
//! quadratic in the nesting depth: 40,000 levels held the reader for seconds, 200,000 for over a minute, for a
//! file of a few hundred kilobytes. Istio resources nest about a dozen levels, so a document that nests more
//! than [`MAX_NESTING`] is rejected without being parsed.

/// The deepest nesting a document may have. Below serde_yaml's own recursion limit (128), so this check, with
/// its line number, is the one that reports.
pub const MAX_NESTING: usize = 100;

/// The 1-based line of `text` on which it first nests more than `limit` levels, if it does.
///
/// One pass, linear in the text, and an over-estimate of the real depth (so it never lets a deep document
/// through): block nesting is the stack of indentation columns still open, each `- ` (or `? `) entry on a line
/// opening one more; flow nesting counts `[` and `{` outside quoted scalars. Block scalars (`|`, `>`) are text:
/// their lines are skipped.
pub fn too_deep(text: &str, limit: usize) -> Option<usize> {
    let mut open: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    // Inside a block scalar: lines indented more than this column belong to it.
    let mut block_scalar: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let content = line.trim_start_matches(' ');
        let indent = line.len() - content.len();
        if let Some(parent) = block_scalar {
            if content.is_empty() || indent > parent {
                continue;
            }
            block_scalar = None;
        }
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let mut rest = content;
        let mut column = indent;
        if flow == 0 {
            while open.last().is_some_and(|&top| top >= indent) {
                open.pop();
            }
            while let Some(after) = entry_indicator(rest) {
                open.push(column);
                let trimmed = after.trim_start_matches(' ');
                column += rest.len() - trimmed.len();
                rest = trimmed;
            }
            if !rest.is_empty() {
                open.push(column);
            }
        }
        let (deepest_flow, after_line) = scan_flow(rest, flow);
        flow = after_line;
        if open.len() + deepest_flow > limit {
            return Some(i + 1);
        }
        if flow == 0 && ends_with_block_scalar_header(rest) {
            // The scalar's lines are indented more than its key. The key's column is at least the column where
            // `rest` starts; taking that (never less) can only scan more lines, never hide one.
            block_scalar = Some(column);
        }
    }
    None
}

/// `rest` after a block sequence entry (`- `) or complex key (`? `) indicator at its start.
fn entry_indicator(rest: &str) -> Option<&str> {
    ["- ", "? "]
        .iter()
        .find_map(|p| rest.strip_prefix(p))
        .or_else(|| (rest == "-" || rest == "?").then_some(""))
}

/// Walks one line's flow brackets from depth `flow`: the deepest depth reached, and the depth at its end.
fn scan_flow(line: &str, mut flow: usize) -> (usize, usize) {
    let mut deepest = flow;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    // A quote opens a quoted scalar only where a scalar can start; `don't` is a plain scalar.
    let mut token_start = true;
    for c in line.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if q == '"' && c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            token_start = false;
            continue;
        }
        match c {
            '"' | '\'' if token_start => quote = Some(c),
            '[' | '{' => {
                flow += 1;
                deepest = deepest.max(flow);
            }
            ']' | '}' => flow = flow.saturating_sub(1),
            '#' if token_start => break,
            _ => {}
        }
        token_start = matches!(c, ' ' | '\t' | '[' | '{' | ',' | ':');
    }
    (deepest, flow)
}

/// Whether a line ends with a block scalar header: `|`, `>`, with optional chomping and indentation indicators.
fn ends_with_block_scalar_header(rest: &str) -> bool {
    let without_comment = match rest.find(" #") {
        Some(i) => &rest[..i],
        None => rest,
    };
    let last = without_comment
        .trim_end()
        .rsplit(' ')
        .next()
        .unwrap_or_default();
    let mut chars = last.chars();
    matches!(chars.next(), Some('|') | Some('>'))
        && chars.all(|c| c == '+' || c == '-' || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_ok(text: &str, limit: usize) -> bool {
        too_deep(text, limit).is_none()
    }

    #[test]
    fn ordinary_documents_pass() {
        let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: r\nspec:\n  \
                  hosts: [reviews]\n  http:\n  - match:\n    - headers:\n        end-user: {exact: jason}\n    \
                  route:\n    - destination: {host: reviews, subset: v2}\n";
        assert!(depth_ok(vs, 8));
        assert!(!depth_ok(vs, 5));
    }

    #[test]
    fn flow_nesting_counts_brackets_outside_quotes() {
        assert_eq!(too_deep("a: [[[[x]]]]\n", 4), Some(1));
        assert!(depth_ok("a: [[[x]]]\n", 4));
        assert!(depth_ok("a: '[[[[[[x'\nb: \"[[[[[\\\"[[[\"\n", 3));
        // An apostrophe inside a plain scalar opens nothing: the brackets after it still count.
        assert_eq!(too_deep("a: [it's, [[[[x]]]]]\n", 4), Some(1));
        assert_eq!(too_deep("a: [\n [\n  [\n   [[x]]]]]\n", 4), Some(4));
    }

    #[test]
    fn block_nesting_counts_open_indentation_and_entries() {
        assert_eq!(too_deep("a:\n b:\n  c:\n   d: 1\n", 3), Some(4));
        assert!(depth_ok("a:\n b: 1\nc:\n d: 1\ne: 1\n", 2));
        assert_eq!(too_deep("- - - - x\n", 4), Some(1));
        assert!(depth_ok("- - - x\n", 4));
    }

    #[test]
    fn block_scalars_are_text() {
        let text = "a: |\n  [[[[[[\n    - - - -\nb: >-\n   {{{{{{\nc: 1\n";
        assert!(depth_ok(text, 2));
        // A key after the scalar, at the scalar's key column, is scanned again.
        assert_eq!(too_deep("- k: |\n    text\n  a: [[[[x]]]]\n", 4), Some(3));
    }
}
