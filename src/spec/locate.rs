//! Finding the line of a field path (`spec.http[1].route[0].destination.host`) in a document's text, so that
//! diagnostics found after loading can still point at the exact line. Block-style YAML is followed key by key
//! and item by item; where the text switches to flow style (`{host: x}`), the deepest line found is used.

/// A document's text and the 1-based file line it starts on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Source {
    pub text: std::sync::Arc<str>,
    pub first_line: usize,
}

impl Source {
    /// The file line of `path`, if any part of it can be found.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        field_line(&self.text, path).map(|l| self.first_line + l - 1)
    }
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn segments(path: &str) -> Option<Vec<Segment<'_>>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if !key.is_empty() {
            out.push(Segment::Key(key));
        }
        while let Some(stripped) = rest.strip_prefix('[') {
            let end = stripped.find(']')?;
            out.push(Segment::Index(stripped[..end].parse().ok()?));
            rest = &stripped[end + 1..];
        }
    }
    Some(out)
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_content(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#')
}

/// The indentation at which `key:` starts on this line (`- key:` counts the dash), if the line holds it.
fn key_indent(line: &str, key: &str) -> Option<usize> {
    let ind = indent(line);
    let mut rest = &line[ind..];
    let mut at = ind;
    while let Some(r) = rest.strip_prefix("- ") {
        let skipped = r.len() - r.trim_start_matches(' ').len();
        at += 2 + skipped;
        rest = &r[skipped..];
    }
    [
        format!("{key}:"),
        format!("'{key}':"),
        format!("\"{key}\":"),
    ]
    .iter()
    .any(|k| rest.starts_with(k.as_str()))
    .then_some(at)
}

/// 1-based line within `text`.
pub fn field_line(text: &str, path: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let (mut start, mut end) = (0usize, lines.len());
    let mut best = None;
    for segment in segments(path)? {
        let Some(first) = (start..end).find(|&i| is_content(lines[i])) else {
            return best;
        };
        match segment {
            Segment::Key(key) => {
                // The mapping's keys sit at the indentation of its first key (after any `- `).
                let Some(level) =
                    key_indent(lines[first], key).or_else(|| first_key_indent(lines[first]))
                else {
                    return best;
                };
                let Some(i) = (start..end).find(|&i| key_indent(lines[i], key) == Some(level))
                else {
                    return best;
                };
                best = Some(i + 1);
                start = i + 1;
                end = block_end(&lines, start, end, level, true);
            }
            Segment::Index(n) => {
                let dash = indent(lines[first]);
                if !lines[first][dash..].starts_with('-') {
                    return best;
                }
                let items: Vec<usize> = (start..end)
                    .filter(|&i| indent(lines[i]) == dash && lines[i][dash..].starts_with('-'))
                    .collect();
                let Some(&i) = items.get(n) else {
                    return best;
                };
                best = Some(i + 1);
                start = i;
                end = block_end(&lines, i + 1, end, dash, false);
            }
        }
        if start >= end {
            break;
        }
    }
    best
}

/// Indentation of the first key on a line, `- ` included.
fn first_key_indent(line: &str) -> Option<usize> {
    let ind = indent(line);
    let rest = &line[ind..];
    let dashes = rest.len() - rest.trim_start_matches(['-', ' ']).len();
    rest.contains(':').then_some(ind + dashes)
}

/// Where the block that starts at `from` ends: the first content line indented at most `level` (for a key's
/// value, a `- ` item at exactly `level` still belongs to it, as YAML allows).
fn block_end(lines: &[&str], from: usize, end: usize, level: usize, key_value: bool) -> usize {
    (from..end)
        .find(|&i| {
            let l = lines[i];
            is_content(l) && {
                let ind = indent(l);
                ind < level || (ind == level && !(key_value && l[ind..].starts_with('-')))
            }
        })
        .unwrap_or(end)
}

#[cfg(test)]
mod tests {
    use super::field_line;

    const VS: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - match:
    - headers:
        End-User:
          exact: jason
    route:
    - destination:
        host: reviews
        subset: v4
  - route:
    - destination: {host: review}
      weight: 50
    timeout: 3 s
";

    #[test]
    fn follows_block_yaml() {
        assert_eq!(field_line(VS, "metadata.name"), Some(4));
        assert_eq!(field_line(VS, "spec.hosts[0]"), Some(7));
        assert_eq!(
            field_line(VS, "spec.http[0].match[0].headers.End-User"),
            Some(11)
        );
        assert_eq!(
            field_line(VS, "spec.http[0].route[0].destination.subset"),
            Some(16)
        );
        assert_eq!(field_line(VS, "spec.http[1].timeout"), Some(20));
        assert_eq!(field_line(VS, "spec.http[1].route[0].weight"), Some(19));
    }

    #[test]
    fn stops_at_flow_style_and_unknown_paths() {
        assert_eq!(
            field_line(VS, "spec.http[1].route[0].destination.host"),
            Some(18)
        );
        assert_eq!(
            field_line(VS, "spec.http[5]"),
            Some(8),
            "the deepest line found"
        );
        assert_eq!(field_line(VS, "status"), None);
    }

    #[test]
    fn flow_items_resolve_to_their_line() {
        let se = "spec:\n  hosts: [mongo]\n  ports:\n  - {number: 27017, name: mongo, protocol: MONGO}\n  resolution: STATIC\n";
        assert_eq!(field_line(se, "spec.ports[0].protocol"), Some(4));
        assert_eq!(field_line(se, "spec.resolution"), Some(5));
    }
}
