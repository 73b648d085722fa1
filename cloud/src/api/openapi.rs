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
    components(schemas(super::error::ErrorBody)),
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
