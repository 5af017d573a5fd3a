package server

import (
	"context"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"meeting.dev/meeting/docs"
	"meeting.dev/meeting/internal/store/storetest"
	"meeting.dev/meeting/internal/web"
)

// The OpenAPI document is valid and describes exactly the API routes served.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(docs.OpenAPI)
	if err != nil {
		t.Fatalf("load docs/openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("docs/openapi.yaml is not valid OpenAPI 3: %v", err)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	h := newHarness(t, storetest.Open(t, "sqlite"), nil)
	served := map[string]bool{}
	for _, r := range h.engine.Routes() {
		if !slices.Contains(web.Paths(), r.Path) { // the browser client's pages are not API
			served[r.Method+" "+r.Path] = true
		}
	}
	if missing := diff(served, documented); len(missing) > 0 {
		t.Errorf("served but not in docs/openapi.yaml: %v", missing)
	}
	if extra := diff(documented, served); len(extra) > 0 {
		t.Errorf("in docs/openapi.yaml but not served: %v", extra)
	}
	// Every operation lists its error replies and every /auth route needs the token.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if strings.HasPrefix(path, "/auth/") && (op.Security == nil || len(*op.Security) == 0) {
				t.Errorf("%s %s: no security requirement", method, path)
			}
			if op.Responses.Value("200") == nil {
				t.Errorf("%s %s: no 200 reply documented", method, path)
			}
		}
	}
}

func diff(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
