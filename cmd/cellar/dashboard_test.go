package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "write the dashboard's screenshot to docs/dashboard.png")

// chromium returns the path of a Chromium to drive, or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium installed (apt-get install chromium): the dashboard's browser test is skipped")
	return ""
}

// browser starts a headless Chromium with a fresh profile and returns a
// chromedp context driving one tab.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1100),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting Chromium: %v", err)
	}
	return ctx
}

// textOf reads an element's text in the page.
func textOf(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("reading %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// setToken replaces the token field's value.
func setToken(t *testing.T, ctx context.Context, tok string) {
	t.Helper()
	js := "document.getElementById('token').value = " + strconv.Quote(tok) + "; true"
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js)); err != nil {
		t.Fatalf("setting the token: %v", err)
	}
}

// waitText waits until the element's text satisfies ok.
func waitText(t *testing.T, ctx context.Context, sel, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s := textOf(t, ctx, sel)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s is %q after 60s", what, sel, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDashboardInABrowser opens the admin listener's dashboard in headless
// Chromium while clients load cellar: the page shows live figures that
// change under load (request count and rate, hit ratio, latency, origin
// health, tier usage, top URLs, a recent error), and a purge from its
// form (with the token) purges: the next request is a miss. With
// -update-screenshot it writes docs/dashboard.png.
func TestDashboardInABrowser(t *testing.T) {
	ctx := browser(t)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/broken" {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, "<p>%s</p>%s", r.URL.Path, strings.Repeat("cellar dashboard ", 200))
	}))
	defer origin.Close()
	dir := t.TempDir()
	r, err := startServe(t, "-origin", origin.URL, "-data-dir", dir, "-access-log=false", "-memory", "64M", "-disk", "256M")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + r.proxy

	// Load: a few popular pages and a tail, until the test ends.
	var stop atomic.Bool
	var wg sync.WaitGroup
	defer func() { stop.Store(true); wg.Wait() }()
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for i := 0; !stop.Load(); i++ {
				path := "/page/" + strconv.Itoa(i%5)
				if i%7 == 0 {
					path = "/tail/" + strconv.Itoa(c*100000+i)
				}
				if resp, err := client.Get(base + path); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	if resp, err := http.Get(base + "/broken"); err == nil {
		resp.Body.Close()
	}

	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+r.admin+"/")); err != nil {
		t.Fatalf("opening the dashboard: %v", err)
	}
	total1 := waitText(t, ctx, "#total-requests", "requests since start", func(s string) bool { return s != "–" && s != "" })
	waitText(t, ctx, "#req-rate", "request rate", func(s string) bool {
		v, err := strconv.ParseFloat(strings.ReplaceAll(s, ",", ""), 64)
		return err == nil && v > 0
	})
	waitText(t, ctx, "#hit-ratio", "hit ratio", func(s string) bool { return strings.HasSuffix(s, "%") })
	waitText(t, ctx, "#p99", "latency p99", func(s string) bool { return strings.HasSuffix(s, "s") })
	waitText(t, ctx, "#origins", "origin health", func(s string) bool { return strings.Contains(s, origin.URL) && strings.Contains(s, "up") })
	waitText(t, ctx, "#tiers", "tier usage", func(s string) bool { return strings.Contains(s, "memory") && strings.Contains(s, "of 64.0 MiB") })
	waitText(t, ctx, "#top-urls", "top URLs", func(s string) bool { return strings.Contains(s, "/page/") })
	waitText(t, ctx, "#errors", "recent errors", func(s string) bool { return strings.Contains(s, "/broken") && strings.Contains(s, "503") })
	// Live: the figures move while the load goes on.
	waitText(t, ctx, "#total-requests", "a later request count", func(s string) bool { return s != total1 })

	// Purge a stored URL that the load does not ask for, from the form
	// with the token: the next request for it is a miss.
	tok, err := os.ReadFile(dir + "/purge-token")
	if err != nil {
		t.Fatal(err)
	}
	target := base + "/solo"
	get(t, target)
	waitFor(t, "/solo is stored", func() bool {
		resp, _ := get(t, target)
		return strings.Contains(resp.Header.Get("Cache-Status"), "hit")
	})
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#token"), strings.TrimSpace(string(tok))),
		chromedp.SetValue(chromedp.CSS("#purge-kind"), "url"),
		chromedp.SendKeys(chromedp.CSS("#purge-value"), target),
		chromedp.Click(chromedp.CSS("#purge-submit")),
	); err != nil {
		t.Fatalf("purging from the form: %v", err)
	}
	res := waitText(t, ctx, "#purge-result", "the purge's answer", func(s string) bool { return strings.HasPrefix(s, "purged ") })
	if res == "purged 0" {
		t.Errorf("the form purged nothing")
	}
	waitText(t, ctx, "#purges", "recent purges", func(s string) bool { return strings.Contains(s, "url") && strings.Contains(s, "purged") })
	if resp, _ := get(t, target); !strings.Contains(resp.Header.Get("Cache-Status"), "fwd=uri-miss") {
		t.Errorf("after the form's purge: Cache-Status %q, want a miss", resp.Header.Get("Cache-Status"))
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#inspect-url"), target),
		chromedp.Click(chromedp.CSS("#inspect-submit")),
	); err != nil {
		t.Fatalf("inspecting from the form: %v", err)
	}
	waitText(t, ctx, "#inspect-result", "the inspection", func(s string) bool { return strings.Contains(s, "key ") })
	_, m := get(t, "http://"+r.admin+"/metrics")
	if !strings.Contains(m, `cellar_purge_requests_total{kind="url",result="ok"} 1`) {
		t.Error("the form's purge is not counted in cellar_purge_requests_total")
	}

	// A wrong token is refused, and the page says so.
	setToken(t, ctx, "not-the-token")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#purge-submit"))); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#purge-result", "the refusal", func(s string) bool { return strings.HasPrefix(s, "401") })

	if *updateScreenshot {
		setToken(t, ctx, "")
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile("../../docs/dashboard.png", png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
