//! The browser app embedded in the binary: `/` (the page), `/app.js` and its ES modules under
//! `/js/`, and `/style.css`. No build step and nothing from a CDN; it needs no inline script or
//! style, so the CSP (`security`) forbids both. Unknown `/js/` files are 404s.

use crate::AppState;
use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the app: (path, content type, body).
const FILES: [(&str, &str, &str); 9] = [
    ("/", "text/html; charset=utf-8", include_str!("../static/index.html")),
    ("/style.css", "text/css; charset=utf-8", include_str!("../static/style.css")),
    ("/app.js", JS, include_str!("../static/app.js")),
    ("/js/api.js", JS, include_str!("../static/js/api.js")),
    ("/js/dom.js", JS, include_str!("../static/js/dom.js")),
    ("/js/messages.js", JS, include_str!("../static/js/messages.js")),
    ("/js/rooms.js", JS, include_str!("../static/js/rooms.js")),
    ("/js/socket.js", JS, include_str!("../static/js/socket.js")),
    ("/js/state.js", JS, include_str!("../static/js/state.js")),
];

pub(crate) fn routes() -> Router<AppState> {
    FILES.iter().fold(Router::new(), |router, &(path, content_type, body)| {
        router.route(path, get(move || async move { page(content_type, body) }))
    })
}

fn page(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::FILES;

    /// Every module the app imports is served.
    #[test]
    fn every_imported_module_is_served() {
        for (_, _, body) in FILES {
            for line in body.lines().filter(|l| l.starts_with("import ")) {
                let Some(spec) = line.split(['\'', '"']).nth(1) else { continue };
                let path = format!("/js/{}", spec.trim_start_matches("./").trim_start_matches("js/"));
                assert!(FILES.iter().any(|(p, _, _)| *p == path), "{path} is imported but not served");
            }
        }
    }
}
