package cache

import (
	"net/http"
	"reflect"
	"testing"
)

// TestInvalidationAfterUnsafeMethod covers §4.4.
func TestInvalidationAfterUnsafeMethod(t *testing.T) {
	tests := []struct {
		name, method string
		status       int
		resp         []string
		want         []string
	}{
		{"PostInvalidatesTarget", "POST", 200, nil, []string{"http://h/a?q"}},
		{"UnknownMethod", "FROB", 204, nil, []string{"http://h/a?q"}},
		{"RedirectCounts", "DELETE", 303, nil, []string{"http://h/a?q"}},
		{"ErrorDoesNot", "PUT", 500, nil, nil},
		{"NotFoundDoesNot", "PUT", 404, nil, nil},
		{"SafeMethodDoesNot", "GET", 200, nil, nil},
		{"OptionsDoesNot", "OPTIONS", 200, nil, nil},
		{"LocationSameOrigin", "POST", 201, []string{"Location: http://H:80/new", "Content-Location: /b"}, []string{"http://h/a?q", "http://h/new", "http://h/b"}},
		{"RelativeLocation", "PATCH", 200, []string{"Location: c"}, []string{"http://h/a?q", "http://h/c"}},
		{"OtherOriginIgnored", "POST", 200, []string{"Location: http://other/x", "Content-Location: https://h/x"}, []string{"http://h/a?q"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := http.NewRequest(tt.method, "http://h/a?q", nil)
			if got := Invalidations(r, tt.status, hdr(tt.resp...)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Invalidations = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTags(t *testing.T) {
	h := hdr("Surrogate-Key: a  b", "Surrogate-Key: c a", "Cache-Tag: d, b ,e,,")
	want := []string{"a", "b", "c", "d", "e"}
	if got := Tags(h); !reflect.DeepEqual(got, want) {
		t.Errorf("Tags = %q, want %q", got, want)
	}
	if got := Tags(hdr()); got != nil {
		t.Errorf("Tags of nothing = %q", got)
	}
}

func TestConfiguredTagFields(t *testing.T) {
	p, err := New(Options{TagFields: []string{"x-purge-tags"}})
	if err != nil {
		t.Fatal(err)
	}
	h := hdr("X-Purge-Tags: a b,c", "Surrogate-Key: not-a-tag")
	if got, want := p.Tags(h), []string{"a", "b", "c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Tags = %q, want %q", got, want)
	}
	dst := http.Header{}
	p.ServeHeader(dst, &Meta{Header: h})
	if dst.Get("X-Purge-Tags") != "" || dst.Get("Surrogate-Key") == "" {
		t.Errorf("served header %v: want the configured tag field removed and others kept", dst)
	}
	if _, err := New(Options{TagFields: []string{"bad field"}}); err == nil {
		t.Error("a tag field that is not a token was accepted")
	}
}
