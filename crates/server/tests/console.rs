//! The console over HTTP without a browser: sign-in, cookies, CSRF, permissions,
//! workspaces, and the time the two heavy pages take to render (printed; run with
//! `--nocapture` to read it).

#[allow(dead_code)]
mod common;

use common::{TestServer, Ws};
use headcount_model::{Day, SegmentId};
use headcount_store::{Permission, Segment, Store};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// A browser in miniature: keeps the console's cookies, follows no redirect.
struct Browser {
    base: String,
    client: reqwest::Client,
    cookies: Mutex<HashMap<String, String>>,
}

impl Browser {
    fn new(server: &TestServer) -> Browser {
        Browser {
            base: server.base.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a client"),
            cookies: Mutex::new(HashMap::new()),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let jar: Vec<String> = self
            .cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let request = if jar.is_empty() {
            request
        } else {
            request.header("cookie", jar.join("; "))
        };
        let response = request.send().await.expect("send");
        for set in response.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (pair, _) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            let mut jar = self.cookies.lock().unwrap();
            if set.contains("Max-Age=0") {
                jar.remove(name);
            } else {
                jar.insert(name.to_string(), value.to_string());
            }
        }
        response
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .send(self.client.get(format!("{}{path}", self.base)))
            .await;
        (r.status().as_u16(), r.text().await.expect("text"))
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.send(self.client.post(format!("{}{path}", self.base)).form(form))
            .await
    }

    async fn sign_in(&self, key: &str) -> reqwest::Response {
        let (_, page) = self.get("/console").await;
        assert!(page.contains(r#"name="key""#), "{page}");
        self.post("/console/sign-in", &[("key", key), ("csrf", &csrf(&page))])
            .await
    }
}

/// The value of `name="csrf"` in a page.
fn csrf(page: &str) -> String {
    let at = page.find(r#"name="csrf" value=""#).expect("a csrf field") + 19;
    page[at..at + 64].to_string()
}

#[tokio::test]
async fn sessions_are_cookies_of_random_ids_and_every_post_needs_the_csrf_token() {
    let (server, key) = TestServer::simple().await;
    let id = server
        .create_segment(&key, "Everyone", json!({"all": []}))
        .await;
    let browser = Browser::new(&server);

    // Signing in without the form's token is refused.
    let r = browser
        .post("/console/sign-in", &[("key", key.as_str())])
        .await;
    assert_eq!(r.status(), 403);

    let r = browser.sign_in(&key).await;
    assert_eq!(r.status(), 303);
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("hc_session="))
        .expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure") && !cookie.contains(&key),
        "{cookie}"
    );
    let (status, page) = browser.get("/console").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Everyone") && page.contains("Sign out"),
        "{page}"
    );
    let token = csrf(&page);

    // Every POST without the session's token is a 403 and changes nothing.
    let wrong = "0".repeat(64);
    for form in [vec![], vec![("csrf", wrong.as_str())]] {
        let r = browser
            .post(&format!("/console/segments/{id}/archive"), &form)
            .await;
        assert_eq!(r.status(), 403);
    }
    let live = server.get(&key, "/segments/list").await;
    assert_eq!(live.body["segments"].as_array().unwrap().len(), 1);

    // With it, the archive happens.
    let r = browser
        .post(
            &format!("/console/segments/{id}/archive"),
            &[("csrf", token.as_str())],
        )
        .await;
    assert_eq!(r.status(), 303);
    let live = server.get(&key, "/segments/list").await;
    assert_eq!(live.body["segments"], json!([]));

    // Behind a TLS proxy, the cookie is Secure.
    let r = reqwest::Client::new()
        .get(format!("{}/console", server.base))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.contains("; Secure"), "{set}");

    // Signing out ends the session.
    let r = browser
        .post("/console/sign-out", &[("csrf", token.as_str())])
        .await;
    assert_eq!(r.status(), 303);
    let (_, page) = browser.get("/console").await;
    assert!(page.contains(r#"name="key""#), "{page}");
}

#[tokio::test]
async fn the_console_follows_the_keys_permissions_and_workspace() {
    let mut server = TestServer::new(common::config());
    let main = server.workspace(Ws::named("main"));
    let other = server.workspace(Ws::named("other"));
    let all = server.key(main, &Permission::ALL, &[]);
    let lister = server.key(main, &[Permission::SegmentsList], &[]);
    let stranger = server.key(other, &Permission::ALL, &[]);
    let walled = server.key(main, &Permission::ALL, &["10.9.9.0/24"]);
    server.serve().await;
    let id = server
        .create_segment(&all, "Secret plans", json!({"all": []}))
        .await;

    let browser = Browser::new(&server);
    assert_eq!(browser.sign_in(&lister).await.status(), 303);
    let (status, page) = browser.get("/console").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Secret plans") && page.contains("lacks the permission segments.data_series")
    );
    assert!(!page.contains("/console/segments/new"), "{page}");
    for path in [
        format!("/console/segments/{id}"),
        "/console/segments/new".into(),
        format!("/console/segments/{id}/edit"),
        format!("/console/segments/{id}/archive"),
    ] {
        let (status, page) = browser.get(&path).await;
        assert_eq!(status, 403, "{path}: {page}");
        assert!(page.contains("lacks the permission segments."), "{page}");
    }

    let browser = Browser::new(&server);
    assert_eq!(browser.sign_in(&stranger).await.status(), 303);
    let (_, page) = browser.get("/console").await;
    assert!(
        !page.contains("Secret plans") && page.contains("0 segments"),
        "{page}"
    );
    let (status, page) = browser.get(&format!("/console/segments/{id}")).await;
    assert_eq!(status, 404);
    assert!(!page.contains("Secret plans"));

    // A key allowed elsewhere cannot even start a session.
    let browser = Browser::new(&server);
    assert_eq!(browser.sign_in(&walled).await.status(), 403);

    // An unknown key gets the form again with the reason.
    let browser = Browser::new(&server);
    let r = browser.sign_in("nope").await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("unknown or revoked"));
}

#[tokio::test]
async fn the_segments_page_with_1000_segments_and_the_100_day_chart_render_quickly() {
    let mut server = TestServer::new(common::config());
    let ws = server.workspace(Ws::named("main"));
    let key = server.key(ws, &Permission::ALL, &[]);
    let now = headcount_server::state::now();
    let today = Day::containing(now, &jiff::tz::TimeZone::UTC);
    let days: Vec<Day> = (1..=100).rev().map(|n| today.add_days(-n)).collect();
    let mut first = None;
    for n in 0..1000u64 {
        let id = SegmentId::new_random();
        first.get_or_insert(id);
        server
            .store()
            .insert_segment(&Segment {
                id,
                workspace: ws,
                name: format!("Segment {n:04}"),
                filter: json!({"attribute": "n", "op": "gte", "value": n}),
                text_description: String::new(),
                tags: vec![format!("tag{}", n % 7)],
                teams: Vec::new(),
                analytics_tracking_enabled: false,
                created_at: now,
                updated_at: now,
                archived_at: None,
            })
            .unwrap();
        let sizes: Vec<(Day, u64)> = days
            .iter()
            .enumerate()
            .map(|(i, d)| (*d, n + i as u64))
            .collect();
        server.store().put_sizes(id, &sizes, now).unwrap();
    }
    server.serve().await;
    let browser = Browser::new(&server);
    browser.sign_in(&key).await;
    // The first visit computes 1000 live sizes; the figure is that of a visit after.
    let (status, page) = browser.get("/console").await;
    assert_eq!(status, 200);
    assert_eq!(page.matches("<tr data-segment=").count(), 1000);
    let started = Instant::now();
    let (status, _) = browser.get("/console").await;
    let list = started.elapsed();
    assert_eq!(status, 200);
    let id = first.unwrap();
    let started = Instant::now();
    let (status, page) = browser.get(&format!("/console/segments/{id}")).await;
    let chart = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!(page.matches("<g class=\"day\"").count(), 100);
    // Day 100 days ago holds 0 + 0; yesterday 0 + 99.
    assert!(
        page.contains(&format!("<title>{}: 99</title>", today.add_days(-1))),
        "{page}"
    );
    println!(
        "console timing (request to answer): segments page with 1000 segments {:.1} ms, 100-day chart {:.1} ms",
        list.as_secs_f64() * 1000.0,
        chart.as_secs_f64() * 1000.0
    );
}

#[tokio::test]
async fn the_editor_shows_a_did_you_mean_warning_with_the_preview() {
    let (server, key) = TestServer::simple().await;
    server
        .post(
            &key,
            "/users/track",
            &json!({"attributes": [{"external_id": "a", "country": "FR"}]}),
        )
        .await
        .expect(201);
    let browser = Browser::new(&server);
    assert_eq!(browser.sign_in(&key).await.status(), 303);
    let (status, page) = browser.get("/console/segments/new").await;
    assert_eq!(status, 200);
    let filter = r#"{"attribute": "countyr", "op": "eq", "value": "FR"}"#;
    let answer = browser
        .post(
            "/console/segments/new",
            &[
                ("csrf", csrf(&page).as_str()),
                ("name", "French users"),
                ("filter", filter),
                ("intent", "preview"),
            ],
        )
        .await;
    assert_eq!(answer.status().as_u16(), 200);
    let page = answer.text().await.expect("text");
    assert!(
        page.contains("id=\"preview-warnings\"")
            && page.contains("no user has an attribute &quot;countyr&quot; yet; did you mean &quot;country&quot;?"),
        "{page}"
    );
}
