// Package docs holds the user documentation that the binary serves.
package docs

import _ "embed"

// OpenAPI is the OpenAPI 3 description of the REST API.
//
//go:embed openapi.yaml
var OpenAPI []byte
