//! A filter shown as indented JSON with the node an error names marked, so that the
//! API's message ("filter.all[1].op: …") is seen at its place; and raw text with the
//! line of a JSON syntax error marked.

use maud::{Markup, PreEscaped, html};
use serde_json::Value;

/// One step of an error's path.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// An object's field.
    Key(String),
    /// An array's element.
    Index(usize),
}

/// The path an API message names, when it starts with `filter` followed by `:`,
/// `.` or `[`: `"filter.all[1].op: unknown"` → `[all, 1, op]`.
pub fn error_path(message: &str) -> Option<Vec<Step>> {
    let rest = message.strip_prefix("filter")?;
    let end = rest.find(": ")?;
    let mut path = &rest[..end];
    let mut steps = Vec::new();
    while !path.is_empty() {
        if let Some(tail) = path.strip_prefix('.') {
            let stop = tail.find(['.', '[']).unwrap_or(tail.len());
            steps.push(Step::Key(tail[..stop].to_string()));
            path = &tail[stop..];
        } else if let Some(tail) = path.strip_prefix('[') {
            let stop = tail.find(']')?;
            steps.push(Step::Index(tail[..stop].parse().ok()?));
            path = &tail[stop + 1..];
        } else {
            return None;
        }
    }
    Some(steps)
}

/// The longest prefix of `steps` that exists in `value`.
fn reachable<'a>(value: &Value, steps: &'a [Step]) -> &'a [Step] {
    let mut node = value;
    for (n, step) in steps.iter().enumerate() {
        let next = match (step, node) {
            (Step::Key(k), Value::Object(o)) => o.get(k),
            (Step::Index(i), Value::Array(a)) => a.get(*i),
            _ => None,
        };
        match next {
            Some(next) => node = next,
            None => return &steps[..n],
        }
    }
    steps
}

fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

fn scalar(value: &Value, out: &mut String) {
    escape(&value.to_string(), out);
}

fn write(value: &Value, target: Option<&[Step]>, depth: usize, out: &mut String) {
    let here = target.is_some_and(<[Step]>::is_empty);
    if here {
        out.push_str(r#"<mark id="filter-error-at">"#);
    }
    let pad = |d: usize| "  ".repeat(d);
    let child = |step: Step| -> Option<&[Step]> {
        match target {
            Some([first, rest @ ..]) if *first == step => Some(rest),
            _ => None,
        }
    };
    match value {
        Value::Object(o) if !o.is_empty() => {
            out.push_str("{\n");
            for (n, (k, v)) in o.iter().enumerate() {
                out.push_str(&pad(depth + 1));
                escape(&Value::String(k.clone()).to_string(), out);
                out.push_str(": ");
                write(v, child(Step::Key(k.clone())), depth + 1, out);
                if n + 1 < o.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&pad(depth));
            out.push('}');
        }
        Value::Array(a) if !a.is_empty() => {
            out.push_str("[\n");
            for (n, v) in a.iter().enumerate() {
                out.push_str(&pad(depth + 1));
                write(v, child(Step::Index(n)), depth + 1, out);
                if n + 1 < a.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&pad(depth));
            out.push(']');
        }
        other => scalar(other, out),
    }
    if here {
        out.push_str("</mark>");
    }
}

/// `value` indented, the deepest existing node of `path` marked (`#filter-error-at`).
pub fn marked(value: &Value, path: &[Step]) -> Markup {
    let mut out = String::new();
    write(value, Some(reachable(value, path)), 0, &mut out);
    html! { pre.json { code { (PreEscaped(out)) } } }
}

/// `text` with line `line` (1-based) marked, every line numbered.
pub fn marked_line(text: &str, line: usize) -> Markup {
    html! {
        pre.json {
            code {
                @for (n, l) in text.lines().enumerate() {
                    @if n + 1 == line {
                        mark #filter-error-at { (n + 1) "  " (l) } "\n"
                    } @else {
                        (n + 1) "  " (l) "\n"
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_paths_are_read_from_the_api_message() {
        assert_eq!(
            error_path("filter.all[1].op: must be one of"),
            Some(vec![
                Step::Key("all".into()),
                Step::Index(1),
                Step::Key("op".into())
            ])
        );
        assert_eq!(error_path("filter: must be an object"), Some(vec![]));
        assert_eq!(error_path("filter is required: a filter node"), None);
        assert_eq!(error_path("name must be a non-empty string"), None);
    }

    #[test]
    fn the_named_node_is_marked_or_its_deepest_existing_parent() {
        let value = json!({"all": [{"attribute": "a"}, {"attribute": "b", "op": "bogus"}]});
        let html = marked(&value, &error_path("filter.all[1].op: bad").unwrap()).into_string();
        assert!(
            html.contains(r#"<mark id="filter-error-at">&quot;bogus&quot;</mark>"#),
            "{html}"
        );
        let html = marked(&value, &error_path("filter.all[0].op: missing").unwrap()).into_string();
        assert!(html.contains("<mark id=\"filter-error-at\">{\n      &quot;attribute&quot;: &quot;a&quot;\n    }</mark>,"), "{html}");
    }
}
