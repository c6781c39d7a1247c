package apiserver

import (
	"bytes"
	"context"
	"github.com/gantry-os/gantry/internal/testsupport"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// specValidator checks real exchanges against docs/openapi.yaml.
type specValidator struct {
	router routers.Router
}

func loadSpec(t *testing.T) *specValidator {
	t.Helper()
	ctx := context.Background()
	doc, err := openapi3.NewLoader().LoadFromFile(testsupport.RepoPath(t, "docs/openapi.yaml"))
	if err != nil {
		t.Fatalf("load docs/openapi.yaml: %v", err)
	}
	if err := doc.Validate(ctx); err != nil {
		t.Fatalf("docs/openapi.yaml is not valid OpenAPI: %v", err)
	}
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &specValidator{router: r}
}

// check validates one exchange: a request the server accepted must match
// the document, and every response must be documented (status, content
// type and body) for its route.
func (v *specValidator) check(t *testing.T, method, uri, body string, resp *http.Response, respBody []byte) {
	t.Helper()
	ctx := context.Background()
	req, _ := http.NewRequest(method, "http://localhost"+uri, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s %s is not in docs/openapi.yaml but the server answered %d", method, uri, resp.StatusCode)
		}
		return
	}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil && resp.StatusCode < 400 {
		t.Errorf("server accepted %s %s, which docs/openapi.yaml does not allow: %v", method, uri, err)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(respBody)),
		Options:                opts,
	}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Errorf("response %d to %s %s does not match docs/openapi.yaml: %v", resp.StatusCode, method, uri, err)
	}
}
