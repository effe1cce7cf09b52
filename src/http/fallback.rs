//! The answers no handler writes, in the error catalogue's JSON:
//!
//! - [`no_route`]: an unknown path (404), or a known path with another
//!   method (405 with `Allow`), told apart by the [`RouteTable`];
//! - [`catalogue_errors`], the outermost middleware but the logger's: it
//!   answers the head guard's synthetic requests (a refused head), and
//!   re-renders any error actix-web or actix-cors rendered in its own format
//!   (a refused CORS preflight is 400 plain text there), keeping the headers
//!   the libraries set (`Vary`, CORS).

use actix_cors::CorsError;
use actix_web::{
    Error, HttpRequest, HttpResponse, ResponseError,
    body::{BoxBody, MessageBody},
    dev::{ResourceDef, ServiceRequest, ServiceResponse},
    http::{
        Method,
        header::{self, HeaderMap},
    },
    middleware::Next,
    web,
};

use super::head_guard::{REFUSAL_HEADER, RefusalMarker};
use crate::error::{ApiError, ErrorCode, foreign_error};

/// Every route's path pattern and methods, read from the OpenAPI document
/// that the route table itself generates (so the two cannot drift).
pub struct RouteTable(Vec<(ResourceDef, Vec<Method>)>);

impl RouteTable {
    pub fn from_openapi(api: &utoipa::openapi::OpenApi) -> Self {
        let routes = api
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let methods = [
                    (Method::GET, item.get.is_some()),
                    (Method::HEAD, item.head.is_some()),
                    (Method::POST, item.post.is_some()),
                    (Method::PUT, item.put.is_some()),
                    (Method::PATCH, item.patch.is_some()),
                    (Method::DELETE, item.delete.is_some()),
                    (Method::OPTIONS, item.options.is_some()),
                ]
                .into_iter()
                .filter_map(|(method, routed)| routed.then_some(method))
                .collect();
                (ResourceDef::new(path.as_str()), methods)
            })
            .collect();
        Self(routes)
    }

    /// The methods routed for `path`; empty when no route has it.
    fn methods_for(&self, path: &str) -> Vec<Method> {
        let mut methods: Vec<Method> = Vec::new();
        for (_, routed) in self.0.iter().filter(|(pattern, _)| pattern.is_match(path)) {
            for method in routed {
                if !methods.contains(method) {
                    methods.push(method.clone());
                }
            }
        }
        methods
    }
}

/// The default service: 405 for a known path, else 404.
pub async fn no_route(
    req: HttpRequest,
    routes: web::Data<RouteTable>,
) -> Result<HttpResponse, ApiError> {
    let path: String = req.path().chars().take(200).collect();
    let allowed = routes.methods_for(req.path());
    if allowed.is_empty() {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no route for {} {path}", req.method()),
        ));
    }
    let names: Vec<&str> = allowed.iter().map(Method::as_str).collect();
    Err(ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{path} takes {}, not {}", names.join(" or "), req.method()),
    )
    .with_detail("allowed_methods", names))
}

/// See the module docs.
pub async fn catalogue_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if let Some(refusal) = refusal_of(&req) {
        let response = ApiError::from(refusal).error_response();
        return Ok(req.into_response(response));
    }
    match next.call(req).await {
        Ok(response) => {
            let foreign = response.response().error().and_then(foreign_error);
            match foreign {
                Some(error) => {
                    let (request, original) = response.into_parts();
                    let headers = library_headers(original.error(), original.headers());
                    Ok(ServiceResponse::new(request, rerender(&headers, error)))
                }
                None => Ok(response.map_into_boxed_body()),
            }
        }
        // A middleware failed (the request is gone with it): the error is
        // replaced by ours, which the dispatcher renders.
        Err(error) => match foreign_error(&error) {
            Some(api) => {
                let headers = library_headers(Some(&error), error.error_response().headers());
                let mut replaced = Error::from(api);
                replaced.add_response_mapper(move |mut response| {
                    keep_library_headers(&headers, response.headers_mut());
                    response
                });
                Err(replaced)
            }
            None => Err(error),
        },
    }
}

/// The refusal a head guard's synthetic request carries.
fn refusal_of(req: &ServiceRequest) -> Option<crate::http::head_guard::Refusal> {
    let value = req.headers().get(REFUSAL_HEADER)?;
    let marker = req.app_data::<web::Data<RefusalMarker>>()?;
    marker.read(value.as_bytes())
}

/// `error` as the catalogue renders it, keeping the headers a library set
/// (`Vary`, CORS).
fn rerender(library_headers: &HeaderMap, error: ApiError) -> HttpResponse {
    let mut response = error.error_response();
    keep_library_headers(library_headers, response.headers_mut());
    response
}

/// The headers a library's refusal (`error`) set, to keep on ours. A CORS
/// refusal depends on the request's `Origin` (and, for a preflight, on what
/// it asks to send) as much as a grant does: without `Vary` a shared cache
/// could serve one origin's refusal to another that is allowed, and
/// actix-cors sets it on its grants only.
fn library_headers(error: Option<&Error>, headers: &HeaderMap) -> HeaderMap {
    let mut headers = headers.clone();
    let cors_refusal = error.is_some_and(|e| e.as_error::<CorsError>().is_some());
    if cors_refusal && !headers.contains_key(header::VARY) {
        headers.insert(
            header::VARY,
            header::HeaderValue::from_static(
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
        );
    }
    headers
}

/// Copies the headers of a library's response that ours lacks, except
/// those that described its body.
fn keep_library_headers(library: &HeaderMap, ours: &mut HeaderMap) {
    let own: Vec<header::HeaderName> = ours.keys().cloned().collect();
    for (name, value) in library {
        let body_header = name == header::CONTENT_TYPE || name == header::CONTENT_LENGTH;
        if !body_header && !own.contains(name) {
            ours.append(name.clone(), value.clone());
        }
    }
}
