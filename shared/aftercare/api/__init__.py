"""The edge shared by the HTTP API functions (support API, surveys): who the caller is, the
error body, the OpenAPI responses. Powertools lives here, never in the domain."""
