//! Warnings about a segment's filter: names of attributes, events and products that no
//! fact of the workspace carries yet. Such a filter is still accepted (a name may be
//! used before its first fact arrives), but a misspelling would otherwise make a
//! segment that is silently empty.

use headcount_engine::Index;
use headcount_model::Filter;

/// Most edits (insertions, deletions, substitutions, ignoring case) between an unknown
/// name and a known one for the known one to be suggested.
const MAX_DISTANCE: usize = 2;

/// One warning per attribute, event or product name of `filter` that `index` does not
/// hold, in the filter's order, each naming the node's path (`filter.all[0].attribute`)
/// and the closest known name when one is near. `"*"` (any product) never warns.
pub fn unknown_names(filter: &Filter, index: &Index) -> Vec<String> {
    let mut out = Vec::new();
    walk(filter, "filter".to_string(), index, &mut out);
    out
}

fn walk(filter: &Filter, path: String, index: &Index, out: &mut Vec<String>) {
    let (field, noun, name, known): (&str, &str, &str, Vec<&str>) = match filter {
        Filter::All(children) | Filter::Any(children) => {
            let key = if matches!(filter, Filter::All(_)) {
                "all"
            } else {
                "any"
            };
            for (i, child) in children.iter().enumerate() {
                walk(child, format!("{path}.{key}[{i}]"), index, out);
            }
            return;
        }
        Filter::Not(child) => return walk(child, format!("{path}.not"), index, out),
        Filter::Attribute { name, .. } => (
            "attribute",
            "no user has an attribute",
            name,
            index.attribute_names().collect(),
        ),
        Filter::Event { name, .. } => (
            "event",
            "no event named",
            name,
            index.event_names().collect(),
        ),
        Filter::Purchase {
            product: Some(name),
            ..
        } => (
            "purchase",
            "no purchase of product",
            name,
            index.product_names().collect(),
        ),
        Filter::Purchase { product: None, .. }
        | Filter::InSegment(_)
        | Filter::RandomBucket { .. } => return,
    };
    if known.contains(&name) {
        return;
    }
    let mut warning = format!("{path}.{field}: {noun} \"{name}\" yet");
    if let Some(close) = closest(name, &known) {
        warning.push_str(&format!("; did you mean \"{close}\"?"));
    }
    out.push(warning);
}

/// The known name nearest to `name` (case-insensitive edit distance at most
/// [`MAX_DISTANCE`], and less than the name's length); ties go to the smaller name.
fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let name = name.to_lowercase();
    let limit = MAX_DISTANCE.min(name.chars().count().saturating_sub(1));
    known
        .iter()
        .map(|k| (distance(&name, &k.to_lowercase()), *k))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, k)| k)
}

/// The Levenshtein distance between two strings, in characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(distance("countyr", "country"), 2);
        assert_eq!(distance("sesion_start", "session_start"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("same", "same"), 0);
    }

    #[test]
    fn the_closest_name_ignores_case_and_stops_at_two_edits() {
        let known = ["country", "City", "plan"];
        assert_eq!(closest("countyr", &known), Some("country"));
        assert_eq!(closest("CITY", &known), Some("City"));
        assert_eq!(closest("language", &known), None);
        // A one-letter name is not "close" to every other one-letter name.
        assert_eq!(closest("x", &["y"]), None);
    }
}
