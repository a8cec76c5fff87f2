//! `Catalog::refresh`, what a running server does when another process changed
//! workspaces or keys: new keys and revocations are taken, and the generation (which
//! keeps compiled plans and live sizes) moves only when segments changed.

use headcount_model::WorkspaceId;
use headcount_server::catalog::Catalog;
use headcount_store::{ApiKey, NewWorkspace, Permission, Segment, SqliteStore, Store, keys};

fn key(ws: WorkspaceId, secret: &str) -> ApiKey {
    ApiKey {
        id: keys::public_id(secret).into(),
        workspace: ws,
        name: "k".into(),
        hash: keys::hash_secret(secret),
        permissions: Permission::ALL.to_vec(),
        allow_ips: vec![],
        created_at: "2024-01-01T00:00:00Z".parse().expect("instant"),
        revoked_at: None,
    }
}

#[test]
fn refresh_takes_keys_and_workspaces_and_moves_the_generation_only_for_segments() {
    let store = SqliteStore::in_memory().expect("store");
    let ws = store
        .create_workspace(&NewWorkspace {
            name: "acme".into(),
            time_zone: "UTC".into(),
            export_limit: 10,
            track_limit: 10,
        })
        .expect("workspace")
        .id;
    let first = "11111111-0000-4000-8000-000000000000";
    store.insert_key(&key(ws, first)).expect("key");
    let mut catalog = Catalog::load(&store).expect("load");
    assert!(catalog.authenticate(first).is_some());
    let generation = catalog.generation();

    let second = "22222222-0000-4000-8000-000000000000";
    store.insert_key(&key(ws, second)).expect("key");
    let at = "2024-02-01T00:00:00Z".parse().expect("instant");
    assert!(store.revoke_key("11111111", at).expect("revoke"));
    let other = store
        .create_workspace(&NewWorkspace {
            name: "globex".into(),
            time_zone: "Asia/Tokyo".into(),
            export_limit: 1,
            track_limit: 1,
        })
        .expect("workspace")
        .id;
    let changed = catalog.refresh(Catalog::load(&store).expect("load"));
    assert!(!changed, "no segment changed");
    assert_eq!(catalog.generation(), generation);
    assert!(catalog.authenticate(first).is_none(), "revoked");
    assert!(catalog.authenticate(second).is_some(), "new");
    assert_eq!(
        catalog.workspace(other).map(|w| w.workspace.name.as_str()),
        Some("globex")
    );

    let segment = Segment {
        id: headcount_model::SegmentId::new_random(),
        workspace: ws,
        name: "Everyone".into(),
        filter: serde_json::json!({"all": []}),
        text_description: String::new(),
        tags: vec![],
        teams: vec![],
        analytics_tracking_enabled: false,
        created_at: at,
        updated_at: at,
        archived_at: None,
    };
    store.insert_segment(&segment).expect("segment");
    assert!(catalog.refresh(Catalog::load(&store).expect("load")));
    assert_eq!(catalog.generation(), generation + 1);
    assert_eq!(catalog.segments_of(ws).count(), 1);
    assert!(!catalog.refresh(Catalog::load(&store).expect("load")));
    assert_eq!(catalog.generation(), generation + 1);
}
