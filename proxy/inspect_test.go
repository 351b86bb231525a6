package proxy

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"
)

// inspect asks the rig's inspect handler about rawURL over real HTTP.
func (r *rig) inspect(rawURL string) (int, *InspectReport) {
	r.t.Helper()
	srv := httptest.NewServer(r.server.InspectHandler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/inspect?url=" + url.QueryEscape(rawURL))
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep InspectReport
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
			r.t.Fatalf("decoding the report: %v", err)
		}
	}
	return resp.StatusCode, &rep
}

// TestInspectReportsEveryStoredObjectOfAURL fills a URL whose response
// varies on Accept-Language and is compressible, and checks that the
// inspection lists its Vary marker, both variants and their coding
// variants, with tags and freshness, and that freshness follows the clock.
func TestInspectReportsEveryStoredObjectOfAURL(t *testing.T) {
	r := newEncRig(t, encOrigin(encBody, "Content-Type: text/html", "Cache-Control: max-age=100", "Vary: Accept-Language", "Surrogate-Key: catalog"))
	for _, lang := range []string{"en", "fr"} {
		if resp, _ := encDo(r, "GET", "/doc", "Accept-Language: "+lang); resp.StatusCode != 200 {
			t.Fatalf("fill %s: %d", lang, resp.StatusCode)
		}
		r.waitCodings()
	}
	raw := "http://" + testHost + "/doc"
	code, rep := r.inspect(raw)
	if code != http.StatusOK {
		t.Fatalf("inspect = %d", code)
	}
	if rep.Key != testKey(t, "/doc") || !slices.Equal(rep.Vary, []string{"Accept-Language"}) {
		t.Errorf("key %q vary %v", rep.Key, rep.Vary)
	}
	kinds := map[string]int{}
	codings := map[string]int{}
	for _, o := range rep.Objects {
		kinds[o.Kind]++
		if o.Kind == "coding" {
			codings[o.Coding]++
		}
		if o.Kind == "coding" && (!o.Fresh || o.TTLSeconds <= 90 || o.TTLSeconds > 100) {
			t.Errorf("coding variant %q: fresh %v ttl %d, want its identity's freshness", o.Key, o.Fresh, o.TTLSeconds)
		}
		if o.Kind == "variant" {
			if !o.Fresh || o.TTLSeconds <= 90 || o.TTLSeconds > 100 || o.Status != 200 || o.Size != int64(len(encBody)) {
				t.Errorf("variant %q: fresh %v ttl %d status %d size %d", o.Key, o.Fresh, o.TTLSeconds, o.Status, o.Size)
			}
			if !slices.Contains(o.Tags, "catalog") {
				t.Errorf("variant %q tags %v, want catalog", o.Key, o.Tags)
			}
		}
	}
	if kinds["vary-marker"] != 1 || kinds["variant"] != 2 || kinds["response"] != 0 {
		t.Errorf("kinds %v, want one marker and two variants", kinds)
	}
	for _, c := range []string{"gzip", "br", "zstd"} {
		if codings[c] != 2 {
			t.Errorf("%d %s variants listed, want one per language (%v)", codings[c], c, codings)
		}
	}

	r.clock.advance(150 * time.Second)
	_, rep = r.inspect(raw)
	for _, o := range rep.Objects {
		if (o.Kind == "variant" || o.Kind == "coding") && (o.Fresh || o.TTLSeconds > -40) {
			t.Errorf("after 150s variant %q: fresh %v ttl %d, want stale by about 50s", o.Key, o.Fresh, o.TTLSeconds)
		}
	}
	if n := r.hits(); n != 2 {
		t.Errorf("origin saw %d requests, want 2: inspecting must not fetch", n)
	}

	if code, rep := r.inspect("http://" + testHost + "/never"); code != http.StatusOK || len(rep.Objects) != 0 {
		t.Errorf("inspect of an unknown URL: %d with %d objects, want 200 and none", code, len(rep.Objects))
	}
	for _, bad := range []string{"", "/doc", "ftp://x/", "http://%zz/"} {
		if code, _ := r.inspect(bad); code != http.StatusBadRequest {
			t.Errorf("inspect %q = %d, want 400", bad, code)
		}
	}
}
