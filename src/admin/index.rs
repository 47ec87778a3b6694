//! `/`: a small page linking what the admin endpoint serves, so the address the demo prints leads somewhere.
//! Plain HTML, no assets; the proxies' links use their short names (`/debug/snapshot?proxy=reviews-v2.default`).

use axum::extract::State;
use axum::response::Html;

use super::AdminState;
use crate::node_id::short_name;

pub async fn page(State(state): State<AdminState>) -> Html<String> {
    let status = state.status.borrow().clone();
    let served = match (status.accepted_revision, status.is_current()) {
        (Some(revision), true) => format!("revision {revision} served"),
        (Some(revision), false) => format!(
            "revision {} REJECTED ({} errors); revision {revision} served",
            status.revision,
            status.errors.len()
        ),
        (None, _) => "no valid configuration yet".to_string(),
    };
    let mut proxies = String::new();
    for id in state.registry.latest_per_node().keys() {
        let name = escape(&short_name(id));
        proxies.push_str(&format!(
            "<li><a href=\"/debug/snapshot?proxy={name}\">{name}</a></li>\n"
        ));
    }
    if proxies.is_empty() {
        proxies.push_str("<li>none connected</li>\n");
    }
    Html(format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Switchyard admin</title></head>\n\
         <body>\n<h1>Switchyard</h1>\n<p>Configuration: {}</p>\n<ul>\n\
         <li><a href=\"/debug/config\">/debug/config</a>: the latest reading of the specs, its errors and warnings</li>\n\
         <li><a href=\"/debug/proxies\">/debug/proxies</a>: connected proxies; per type sent, acknowledged, rejected</li>\n\
         <li><a href=\"/metrics\">/metrics</a>: Prometheus metrics</li>\n\
         <li><a href=\"/ready\">/ready</a>: 200 once a configuration is served</li>\n\
         </ul>\n<h2>Proxies</h2>\n<p>What each is served, resource by resource: <code>/debug/snapshot?proxy=NAME</code></p>\n<ul>\n{proxies}</ul>\n\
         </body>\n</html>\n",
        escape(&served)
    ))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
