//! The gateway's one route table. Every handler is registered through
//! [`Routes::add`], which takes its method and path from the handler's
//! `#[utoipa::path]` operation: the same table that serves requests also
//! writes the OpenAPI document (`/openapi.json`), so a route cannot be
//! served undocumented, documented unserved, or served under another path
//! than the document says.

use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, Responder};
use utoipa::openapi::path::{HttpMethod, PathItem, Paths, PathsBuilder};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;

/// A documented operation: the unit struct `#[utoipa::path]` generates
/// beside a handler (`__path_<handler>`).
pub trait Operation:
    utoipa::Path + utoipa::__dev::SchemaReferences + for<'t> utoipa::__dev::Tags<'t>
{
}

impl<T> Operation for T where
    T: utoipa::Path + utoipa::__dev::SchemaReferences + for<'t> utoipa::__dev::Tags<'t>
{
}

/// What the document gathers from the table: operations by path, and the
/// schemas their bodies refer to.
#[derive(Default)]
pub struct Described {
    pub paths: Paths,
    pub schemas: Vec<(String, RefOr<Schema>)>,
}

/// Where the table's routes go.
enum Target<'a> {
    /// Into the running app.
    Serve(&'a mut web::ServiceConfig),
    /// Into the OpenAPI document.
    Describe(&'a mut Described),
}

/// The table being filled, for serving or for describing.
pub struct Routes<'a> {
    target: Target<'a>,
}

impl Routes<'_> {
    /// Registers `handler` under `operation`'s method and path, or adds
    /// `operation` to the document.
    pub fn add<O, H, Args>(&mut self, _operation: O, handler: H) -> &mut Self
    where
        O: Operation,
        H: Handler<Args>,
        Args: FromRequest + 'static,
        H::Output: Responder + 'static,
    {
        match &mut self.target {
            Target::Serve(cfg) => {
                let path = O::path();
                for method in O::methods() {
                    cfg.route(&path, web::method(actix_method(method)).to(handler.clone()));
                }
            }
            Target::Describe(described) => {
                let mut operation = O::operation();
                let tags: Vec<String> = O::tags().into_iter().map(str::to_owned).collect();
                if !tags.is_empty() {
                    operation.tags = Some(tags);
                }
                let mut paths = PathsBuilder::from(std::mem::take(&mut described.paths));
                for method in O::methods() {
                    paths = paths.path(O::path(), PathItem::new(method, operation.clone()));
                }
                described.paths = paths.build();
                O::schemas(&mut described.schemas);
            }
        }
        self
    }
}

/// The table: every route of the gateway.
fn table(routes: &mut Routes) {
    crate::ingest::routes(routes);
    crate::ops::routes(routes);
}

/// Registers every route with the app.
pub fn serve(cfg: &mut web::ServiceConfig) {
    table(&mut Routes {
        target: Target::Serve(cfg),
    });
}

/// Every operation, as the OpenAPI document lists them.
pub fn describe() -> Described {
    let mut described = Described::default();
    table(&mut Routes {
        target: Target::Describe(&mut described),
    });
    described
}

fn actix_method(method: HttpMethod) -> Method {
    match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// actix-web calls that add routes to an app.
    const REGISTRATIONS: [&str; 6] = [
        ".route(",
        ".service(",
        ".configure(",
        "web::resource(",
        "web::scope(",
        "web::route(",
    ];

    fn sources(dir: &Path, found: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                found.push((path.display().to_string(), text));
            }
        }
    }

    /// A running actix app cannot list its routes, so this reads the
    /// source: outside this file, the app's one `.configure(routes::serve)`
    /// is the only registration, and every route goes through the table.
    #[test]
    fn no_route_is_registered_beside_the_table() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        let mut beside = Vec::new();
        for (path, text) in &files {
            if path.ends_with("src/routes.rs") {
                continue;
            }
            for (number, line) in text.lines().enumerate() {
                let line = line.trim();
                if line == ".configure(routes::serve)" && path.ends_with("src/app.rs") {
                    continue;
                }
                if REGISTRATIONS.iter().any(|call| line.contains(call)) {
                    beside.push(format!("{path}:{}: {line}", number + 1));
                }
            }
        }
        assert!(files.len() > 20, "read only {} files", files.len());
        assert!(
            beside.is_empty(),
            "routes registered beside the table:\n{}",
            beside.join("\n")
        );
    }
}
