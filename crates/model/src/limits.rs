//! What one filter, and the live filters of one workspace, may cost: the limits that
//! keep a small request from claiming a large share of the server's memory, time or
//! stack. `docs/api.md` ("Limits") lists them with their messages.

use crate::filter::{AttrOp, Filter};
use crate::pattern::Pattern;

/// Most `matches` operators in one filter (its own nodes, not those it refers to).
pub const MAX_REGEXES_PER_FILTER: usize = 20;
/// Most `matches` operators in the filters of the live segments of one workspace.
pub const MAX_REGEXES_PER_WORKSPACE: usize = 200;
/// Most bytes of compiled `matches` automata in the filters of the live segments of
/// one workspace, each distinct pattern counted once (equal patterns share one).
pub const MAX_REGEX_BYTES_PER_WORKSPACE: usize = 32 << 20;
/// Most values in one `in` or `not_in` list.
pub const MAX_IN_VALUES: usize = 10_000;
/// Most nodes of a filter once every `in_segment` is expanded in place (an
/// `in_segment` node counts as one node above the filter it names).
pub const MAX_INLINED_NODES: u64 = 10_000;
/// Deepest nesting of a filter once every `in_segment` is expanded in place (an
/// `in_segment` node counts as one level above the filter it names). It bounds the
/// recursion of compiling and evaluating a plan.
pub const MAX_INLINED_DEPTH: u64 = 256;

/// `n` with thousands separators: `12,345`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

impl Filter {
    /// The patterns of the filter's own `matches` nodes.
    pub fn patterns(&self) -> Vec<&Pattern> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(node) = stack.pop() {
            match node {
                Filter::All(children) | Filter::Any(children) => stack.extend(children),
                Filter::Not(child) => stack.push(child),
                Filter::Attribute {
                    op: AttrOp::Matches(p),
                    ..
                } => out.push(p),
                _ => {}
            }
        }
        out
    }
}

/// Checks the `matches` patterns of a workspace's live filters against
/// [`MAX_REGEXES_PER_WORKSPACE`] and [`MAX_REGEX_BYTES_PER_WORKSPACE`].
///
/// # Errors
/// A sentence that names the limit and the value, for a 400.
pub fn check_workspace_patterns<'a>(
    patterns: impl IntoIterator<Item = &'a Pattern>,
) -> Result<(), String> {
    let mut count = 0usize;
    let mut distinct: Vec<&Pattern> = Vec::new();
    for pattern in patterns {
        count += 1;
        if !distinct.iter().any(|p| p.as_str() == pattern.as_str()) {
            distinct.push(pattern);
        }
    }
    if count > MAX_REGEXES_PER_WORKSPACE {
        return Err(format!(
            "the live segments of this workspace would use {} matches operators; at most {} are allowed",
            grouped(count as u64),
            grouped(MAX_REGEXES_PER_WORKSPACE as u64)
        ));
    }
    let bytes: usize = distinct.iter().map(|p| p.memory_usage()).sum();
    if bytes > MAX_REGEX_BYTES_PER_WORKSPACE {
        return Err(format!(
            "the live segments of this workspace would hold {} bytes of compiled matches patterns; at most {} are allowed",
            grouped(bytes as u64),
            grouped(MAX_REGEX_BYTES_PER_WORKSPACE as u64)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::grouped;

    #[test]
    fn grouped_puts_a_comma_every_three_digits() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(12_345), "12,345");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }
}
