//! The `nginx` and `httpd` built-in images: a static web server whose default page names the pod.

use std::path::{Component, Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};

use super::{bind, declared_port, hostname, pod_ip, serve_until_stopped};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Nginx,
    Httpd,
}

impl Flavor {
    fn docroot(self) -> &'static str {
        match self {
            Flavor::Nginx => "/usr/share/nginx/html",
            Flavor::Httpd => "/usr/local/apache2/htdocs",
        }
    }

    fn server(self) -> &'static str {
        match self {
            Flavor::Nginx => "nginx/1.27.0 (niwa)",
            Flavor::Httpd => "Apache/2.4.62 (Unix) (niwa)",
        }
    }

    /// The default page, as the real image's, plus which pod served it.
    pub fn default_page(self) -> String {
        let pod = std::env::var("POD_NAME").unwrap_or_else(|_| hostname());
        let ns = std::env::var("POD_NAMESPACE").unwrap_or_default();
        let ip = pod_ip();
        match self {
            Flavor::Nginx => format!(
                "<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head>\n<body>\n\
                 <h1>Welcome to nginx!</h1>\n<p>If you see this page, the nginx web server is successfully installed and working.</p>\n\
                 <p>Served by pod <b>{pod}</b> in namespace <b>{ns}</b> at {ip} (niwa).</p>\n</body>\n</html>\n"
            ),
            Flavor::Httpd => format!(
                "<html><body><h1>It works!</h1>\n<p>Served by pod <b>{pod}</b> in namespace <b>{ns}</b> at {ip} (niwa).</p></body></html>\n"
            ),
        }
    }
}

/// A request path under the document root, refusing `..`.
fn file_for(docroot: &Path, path: &str) -> Option<PathBuf> {
    let mut out = docroot.to_path_buf();
    for c in Path::new(path.trim_start_matches('/')).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if out.is_dir() {
        out.push("index.html");
    }
    Some(out)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html" | "htm") => "text/html",
        Some("css") => "text/css",
        Some("js") => "application/javascript",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("txt") => "text/plain",
        _ => "application/octet-stream",
    }
}

fn respond(flavor: Flavor, status: StatusCode, ctype: &str, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(ctype) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r.headers_mut()
        .insert(header::SERVER, HeaderValue::from_static(flavor.server()));
    r
}

async fn handle(flavor: Flavor, req: Request<Body>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let docroot = Path::new(flavor.docroot());
    if let Some(file) = file_for(docroot, &path)
        && let Ok(data) = tokio::fs::read(&file).await
    {
        return respond(flavor, StatusCode::OK, content_type(&file), data);
    }
    if path == "/" || path == "/index.html" {
        return respond(
            flavor,
            StatusCode::OK,
            "text/html",
            flavor.default_page().into_bytes(),
        );
    }
    let body = match flavor {
        Flavor::Nginx => "<html>\n<head><title>404 Not Found</title></head>\n<body>\n<center><h1>404 Not Found</h1></center>\n<hr><center>nginx</center>\n</body>\n</html>\n".to_string(),
        Flavor::Httpd => format!("<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1><p>The requested URL {path} was not found on this server.</p></body></html>\n"),
    };
    respond(
        flavor,
        StatusCode::NOT_FOUND,
        "text/html",
        body.into_bytes(),
    )
}

pub async fn serve(flavor: Flavor) -> i32 {
    let port = declared_port().unwrap_or(80);
    let listener = match bind(port).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    eprintln!("{} listening on {}:{port}", flavor.server(), pod_ip());
    let router = Router::new().fallback(move |req: Request<Body>| handle(flavor, req));
    serve_until_stopped(listener, router).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_under_the_document_root() {
        let root = Path::new("/srv");
        assert_eq!(
            file_for(root, "/a/b.html"),
            Some(PathBuf::from("/srv/a/b.html"))
        );
        assert_eq!(file_for(root, "/../etc/passwd"), None);
        assert!(Flavor::Nginx.default_page().contains("Welcome to nginx!"));
        assert!(Flavor::Httpd.default_page().contains("It works!"));
    }
}
