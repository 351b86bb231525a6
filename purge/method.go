package purge

import (
	"net/http"
	"net/netip"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/store"
)

// MethodPurge is the non-standard method that purges one URL on the main
// listener (Varnish, Squid, nginx's purge module).
const MethodPurge = "PURGE"

// SoftPurgeField is the request field that makes a PURGE soft: "1" marks
// the URL's objects stale instead of removing them (as "soft": true does on
// the admin API), "0" or its absence purges hard. Fastly's
// Fastly-Soft-Purge works the same way.
const SoftPurgeField = "Soft-Purge"

// MethodHandler returns the handler of the PURGE method on the main
// listener: it removes every stored variant of the request's own URL (its
// primary key, RFC 9111 §4) and answers 200 with {"purged": N}, N possibly
// 0. Clients outside Options.Networks get 403 and purge nothing; other
// methods get 405. SoftPurgeField: 1 makes it soft; any value but 0 or 1
// gets 400 and purges nothing. The proxy routes PURGE requests to it (proxy.Options.Purge).
//
// With Options.Stream the purge goes through the stream, as the admin
// API's do (see Handler). With Options.Peers the purge is then forwarded to every peer's
// /purge/url, with the same soft flag, as the admin API forwards its
// purges (see Handler): the answer lists the peers' results, and is 502
// when any failed.
func (a *API) MethodHandler() http.Handler {
	return http.HandlerFunc(a.serveMethod)
}

func (a *API) serveMethod(w http.ResponseWriter, r *http.Request) {
	if r.Method != MethodPurge {
		w.Header().Set("Allow", MethodPurge)
		writeJSON(w, http.StatusMethodNotAllowed, result{Error: "only the PURGE method is handled here"})
		return
	}
	if !a.allowed(r.RemoteAddr) {
		a.metrics.requests.WithLabelValues("method", "forbidden").Inc()
		a.log.Warn("purge denied", "who", r.RemoteAddr, "kind", "method", "url", cache.PrimaryKey(r), "reason", "client network not allowed")
		writeJSON(w, http.StatusForbidden, result{Error: "PURGE is not allowed from this address"})
		return
	}
	key := cache.PrimaryKey(r)
	if k, err := a.opts.Key(key); err == nil {
		key = k // the configured key options (Options.Key)
	}
	var soft bool
	switch v := r.Header.Values(SoftPurgeField); {
	case len(v) == 0 || (len(v) == 1 && v[0] == "0"):
	case len(v) == 1 && v[0] == "1":
		soft = true
	default:
		a.metrics.requests.WithLabelValues("method", "bad_request").Inc()
		writeJSON(w, http.StatusBadRequest, result{Error: SoftPurgeField + " must be 1 (soft) or 0 (hard)"})
		return
	}
	start := a.now()
	if a.opts.Stream != nil {
		sels := []store.Selector{{URL: key}}
		a.publish(w, r, start, fanOut{kind: kindURL, label: "method", token: "none", what: describe(sels), sels: sels, soft: soft})
		return
	}
	n, err := a.purge(r.Context(), []store.Selector{{URL: key}}, soft)
	if err != nil {
		a.metrics.requests.WithLabelValues("method", "error").Inc()
		a.log.Error("purge failed", "who", r.RemoteAddr, "kind", "method", "what", "url="+key, "purged", n, "err", err)
		writeJSON(w, http.StatusInternalServerError, result{Purged: n, Error: "purge failed: " + err.Error()})
		return
	}
	a.metrics.objects.WithLabelValues("method").Add(float64(n))
	sels := []store.Selector{{URL: key}}
	a.finish(w, r, start, fanOut{kind: kindURL, label: "method", token: "none", what: describe(sels), sels: sels, soft: soft, purged: n})
}

// allowed reports whether the connection peer remoteAddr ("ip:port") is in
// one of the configured networks. An unparsable address is refused.
func (a *API) allowed(remoteAddr string) bool {
	ap, err := netip.ParseAddrPort(remoteAddr)
	var addr netip.Addr
	if err == nil {
		addr = ap.Addr()
	} else if addr, err = netip.ParseAddr(remoteAddr); err != nil {
		return false
	}
	addr = addr.Unmap().WithZone("")
	for _, p := range a.opts.Networks {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
