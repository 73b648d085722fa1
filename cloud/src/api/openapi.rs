//! The document's frame: title, the bearer scheme and the shared schemas. The paths come from
//! the routes themselves (see the module above).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Fieldlink cloud API",
        description = "Gateways, telemetry, dead letters and tokens. Every route needs an \
            `Authorization: Bearer flk_…` token; each route's description names the least role."
    ),
    components(schemas(crate::http::error::ErrorBody)),
    modifiers(&BearerScheme),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Answers any operation can give, added to every operation of the document so each one
/// describes them: 408 (the request was not complete in time), 429 (too many failed
/// authentications from the caller's address, with `Retry-After`), 503 (the database could not
/// be reached); 413 where there is a body; 422 (text with control characters, or a value the
/// database refused) where there are parameters or a body.
pub fn common_responses(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::Operation;
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

    let error = |description: &str| {
        ResponseBuilder::new().description(description).content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
    };
    let retry_after = utoipa::openapi::header::HeaderBuilder::new()
        .schema(
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::Integer)
                .minimum(Some(1)),
        )
        .description(Some("seconds until the caller's address is admitted again"))
        .build();
    let add = |op: &mut Operation| {
        let has_body = op.request_body.is_some();
        let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
        let mut put = |code: &str, r: utoipa::openapi::Response| {
            op.responses
                .responses
                .entry(code.to_string())
                .or_insert(RefOr::T(r));
        };
        put("408", error("the request was not complete in time").build());
        put(
            "429",
            error("too many failed authentications from this address")
                .header("Retry-After", retry_after.clone())
                .build(),
        );
        put("503", error("the database could not be reached").build());
        if has_body {
            put("413", error("the body is larger than the limit").build());
        }
        if has_body || has_params {
            put(
                "422",
                error("text with control characters, or a value the database refused").build(),
            );
        }
    };
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            add(op);
        }
    }
}
