package cache

import "testing"

// TestParseHTTPDateFollowsTheGrammar checks RFC 9110 §5.6.7 as the HTTP
// caching conformance suite's expires-parse tests read it: the three forms
// exactly, names in any case, nothing else.
func TestParseHTTPDateFollowsTheGrammar(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"Sun, 06 Nov 1994 08:49:37 GMT", true},
		{"Sunday, 06-Nov-94 08:49:37 GMT", true},
		{"Sun Nov  6 08:49:37 1994", true},
		{"Thu, 18 Aug 2050 02:01:18 GMT", true},
		{"Thursday, 18-Aug-50 02:01:18 GMT", true},
		{"Thursday, 18-Aug-50 02:01:18 UTC", true}, // what time.RFC850 writes
		{"Thu Aug 18 02:01:18 2050", true},
		{"THU, 18 AUG 2050 02:01:18 gmt", true},
		{"Thu, 18 Aug 2050 02:01:18 UTC", false},
		{"Thu, 18 Aug 2050 02:01:18 AEST", false},
		{"Thu, 18 Aug 50 02:01:18 GMT", false},
		{"Thu 18 Aug 2050 02:01:18 GMT", false},
		{"Thu, 18  Aug  2050 02:01:18 GMT", false},
		{"Thu, 18-Aug-2050 02:01:18 GMT", false},
		{"Thu, 18 Aug 2050 02.01.18 GMT", false},
		{"Thu, 18 Aug 2050 2:01:18 GMT", false},
		{"Thu, 31 Feb 2050 02:01:18 GMT", false},
		{"Thu Aug 8 02:01:18 2050", false},
		{"0", false},
		{"", false},
	} {
		if _, ok := parseHTTPDate(tt.in); ok != tt.ok {
			t.Errorf("parseHTTPDate(%q) ok = %v, want %v", tt.in, ok, tt.ok)
		}
	}
}
