//! The ceiling: the fastest a `GET /segments/data_series` could possibly be served by an
//! axum + tokio server on this machine. Every GET gets 200 and the same JSON body (read
//! once from a file: a real data_series answer, so the bytes on the wire are the same).
//! No auth, no routing, no computation.
//!
//! Usage: ceiling LISTEN_ADDR BODY_FILE

use axum::Router;
use axum::http::header;
use axum::routing::get;
use bytes::Bytes;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: ceiling LISTEN_ADDR BODY_FILE");
        std::process::exit(2);
    }
    let body = Bytes::from(std::fs::read(&args[2]).expect("cannot read the body file"));
    let handler = move || {
        let body = body.clone();
        async move { ([(header::CONTENT_TYPE, "application/json")], body) }
    };
    let app = Router::new().fallback(get(handler));
    let listener = tokio::net::TcpListener::bind(&args[1]).await.expect("cannot listen");
    eprintln!("ceiling listening on {}", args[1]);
    axum::serve(listener, app).await.expect("server failed");
}
