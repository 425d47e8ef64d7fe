//! The web dashboard: a page at `/` and its files at `/assets/…`, compiled into the binary so a
//! TART serves its own dashboard with nothing fetched at run time and no JavaScript build step.
//!
//! The page is plain ES modules: `app.js` holds the router, `lib.js` the helpers every view
//! shares, and each view is one module of its own (`network.js`, `node.js`, …) named in
//! `app.js`'s route table. Files are answered with a strong ETag (their SHA-256) and `no-cache`, so a browser
//! revalidates and an upgraded TART is seen at once, at the price of a 304 per file.

use actix_web::http::header::Header;
use actix_web::http::header::{self, EntityTag};
use actix_web::{guard, web, HttpRequest, HttpResponse};
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "src/web/assets/"]
struct Assets;

/// Whether `path` is the page or one of its files (served without the API token: they hold no
/// data).
pub fn is_page_path(path: &str) -> bool {
    path == "/" || path.starts_with("/assets/")
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").route(get_or_head().to(index)))
        .service(web::resource("/assets/{file:.+}").route(get_or_head().to(asset)));
}

/// GET, and HEAD for clients and probes that check a file without fetching it.
fn get_or_head() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

async fn index(req: HttpRequest) -> HttpResponse {
    serve(&req, "index.html")
}

async fn asset(req: HttpRequest, file: web::Path<String>) -> HttpResponse {
    serve(&req, &file)
}

fn serve(req: &HttpRequest, name: &str) -> HttpResponse {
    let Some(file) = Assets::get(name) else {
        return HttpResponse::NotFound().json(serde_json::json!({
            "error": format!("no dashboard file `{name}`")
        }));
    };
    let tag = EntityTag::new_strong(hex::encode(file.metadata.sha256_hash()));
    let unchanged = match header::IfNoneMatch::parse(req).ok() {
        Some(header::IfNoneMatch::Any) => true,
        Some(header::IfNoneMatch::Items(tags)) => tags.iter().any(|t| t.weak_eq(&tag)),
        None => false,
    };
    let mut answer = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    answer
        .insert_header(header::ETag(tag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_TYPE, content_type(name)))
        .insert_header(("X-Content-Type-Options", "nosniff"));
    if unchanged {
        answer.finish()
    } else {
        answer.body(file.data.into_owned())
    }
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every module a page file imports (`from "./x.js"`, `import("./x.js")`) or links
    /// (`/assets/x`) is among the compiled-in files: a renamed view cannot 404 at run time.
    #[test]
    fn every_file_the_page_refers_to_is_compiled_in() {
        let mut referred = 0;
        for name in Assets::iter() {
            let text = String::from_utf8(Assets::get(&name).unwrap().data.into_owned()).unwrap();
            for open in ["\"./", "\"/assets/"] {
                for piece in text.split(open).skip(1) {
                    let file = piece.split('"').next().unwrap();
                    assert!(
                        Assets::get(file).is_some(),
                        "{name} refers to a missing {file}"
                    );
                    referred += 1;
                }
            }
        }
        assert!(referred >= 10, "only {referred} references found");
    }

    #[test]
    fn only_the_page_and_its_files_are_open_paths() {
        assert!(is_page_path("/") && is_page_path("/assets/app.js"));
        assert!(!is_page_path("/api/nodes") && !is_page_path("/metrics"));
    }
}
