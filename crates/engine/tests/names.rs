//! The names an index holds: what segment warnings compare a filter's names with.

use headcount_engine::Index;
use headcount_model::{Fact, FactKind, UserKey, Value};
use jiff::Timestamp;

fn sorted<'a>(names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut names: Vec<&str> = names.collect();
    names.sort_unstable();
    names
}

#[test]
fn an_index_lists_the_attribute_event_and_product_names_it_holds() {
    let mut index = Index::new();
    assert!(index.attribute_names().next().is_none());
    let user = UserKey::External("ada".into());
    let time: Timestamp = "2026-11-28T09:30:00Z".parse().unwrap();
    let facts = [
        FactKind::Attributes(vec![("country".into(), Some(Value::String("FR".into())))]),
        FactKind::Event {
            name: "session_start".into(),
            detail: None,
        },
        FactKind::Purchase {
            product: "gift-card".into(),
            detail: None,
        },
    ];
    for kind in facts {
        index.apply(&user, &Fact { time, kind });
    }
    assert_eq!(sorted(index.attribute_names()), ["country"]);
    assert_eq!(sorted(index.event_names()), ["session_start"]);
    assert_eq!(sorted(index.product_names()), ["gift-card"]);
}
