from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "mlk_… project key, mlt_… personal token (POST /api/v1/auth/token) or mlg_… gateway token.",
        }


class PortalSessionScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.authentication.PortalSessionAuthentication"
    name = "portalSession"

    def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}
