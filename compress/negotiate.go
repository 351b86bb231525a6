package compress

import (
	"strings"

	"github.com/cellar-cache/cellar/internal/httpheader"
)

// Negotiate picks the content coding to send, per RFC 9110 §12.5.3, given the
// request's Accept-Encoding field lines (all of them, as from
// http.Header.Values; nil or empty when the field is absent), the codings available for
// this object, and the tie-break order (nil means [DefaultOrder]).
//
// Identity is always available, whether or not it is listed. The rules:
//   - An absent field means any coding is acceptable; identity is preferred,
//     so the answer is identity.
//   - Each member is a coding name with an optional weight ";q=" (0 to 1, up to
//     three decimals). Names are case-insensitive and x-gzip means gzip. A
//     member whose weight is malformed is ignored, as are empty members and
//     parameters other than q. Codings nobody has available are ignored. A
//     coding listed more than once gets its highest weight.
//   - "*" gives its weight to every available coding not listed by name.
//   - q=0 means "not acceptable".
//   - Identity is acceptable unless excluded by "identity;q=0", or by "*;q=0"
//     without an entry for identity; when acceptable only by default it ranks
//     below every coding the client listed with a weight above zero. So an
//     empty field value, or one with no usable member, yields identity.
//   - Among equally weighted codings the one earlier in order wins; codings
//     missing from order rank after it in the order of available, and identity
//     ranks last unless order lists it.
//
// The result is the canonical coding name (such as "gzip") with ok=true, or
// Identity with ok=false when nothing available is acceptable. In that case
// RFC 9110 §12.5.3 lets the server either send a 406 (Not Acceptable) or
// disregard the field and send identity; which one is the caller's choice
// (identity is the one that breaks fewest clients).
//
// Negotiate does not allocate for up to seven available codings.
func Negotiate(acceptEncoding []string, available []string, order []string) (coding string, ok bool) {
	if len(acceptEncoding) == 0 {
		return Identity, true
	}
	if len(order) == 0 {
		order = defaultOrder[:]
	}

	var buf [8]candidate
	cands := buf[:0]
	add := func(name string) {
		for _, c := range cands {
			if c.name == name {
				return
			}
		}
		cands = append(cands, candidate{name: name, q: -1})
	}
	for _, a := range available {
		if a := canonical(a); a != "*" && httpheader.IsToken(a) {
			add(a)
		}
	}
	add(Identity)

	wildcard := -1
	for _, line := range acceptEncoding {
		s := memberScanner{s: line}
		for {
			name, q, more := s.next()
			if !more {
				break
			}
			if q < 0 {
				continue // empty or malformed member
			}
			if name == "*" {
				wildcard = max(wildcard, q)
				continue
			}
			name = canonical(name)
			for i := range cands {
				if cands[i].name == name {
					cands[i].q = max(cands[i].q, q)
				}
			}
		}
	}

	best, bestScore, bestRank := -1, 0, 0
	for i, c := range cands {
		// Scores: twice the weight in thousandths for a weight the client
		// gave, by name or by "*"; 1 for identity acceptable only by default,
		// so it loses to any weight above zero; 0 for not acceptable.
		score := 0
		switch {
		case c.q >= 0:
			score = 2 * c.q
		case wildcard >= 0:
			score = 2 * wildcard
		case c.name == Identity:
			score = 1
		}
		if score == 0 {
			continue
		}
		rank := rankOf(c.name, i, order)
		if best < 0 || score > bestScore || score == bestScore && rank < bestRank {
			best, bestScore, bestRank = i, score, rank
		}
	}
	if best < 0 {
		return Identity, false
	}
	return cands[best].name, true
}

var defaultOrder = [...]string{Brotli, Zstd, Gzip}

// candidate is an available coding and the highest weight the client gave it
// by name, in thousandths, or -1 when the client did not name it.
type candidate struct {
	name string
	q    int
}

// rankOf is the tie-break rank of the coding at index i of the candidates:
// its index in order, else after order by position, with identity last.
func rankOf(name string, i int, order []string) int {
	for j, o := range order {
		if canonical(o) == name {
			return j
		}
	}
	if name == Identity {
		return 1 << 30
	}
	return len(order) + i
}

// memberScanner splits one Accept-Encoding field line into its list members,
// per RFC 9110 §5.6.1 (commas, with empty members allowed) and §12.5.3:
//
//	Accept-Encoding  = #( codings [ weight ] )
//	codings          = content-coding / "identity" / "*"
//	weight           = OWS ";" OWS "q=" qvalue
//
// Commas inside quoted strings do not split members.
type memberScanner struct {
	s string
}

// next returns the next member's coding name and weight in thousandths, with
// more=false at the end of the line. q is -1 for a member to be ignored: empty,
// a name that is not a token, or a malformed weight.
func (m *memberScanner) next() (name string, q int, more bool) {
	member, more := m.nextRaw()
	if !more {
		return "", 0, false
	}
	return parseMember(member)
}

// nextRaw returns the next comma-separated member, unparsed, with more=false
// at the end of the line.
func (m *memberScanner) nextRaw() (member string, more bool) {
	if m.s == "" {
		return "", false
	}
	inQuote, escaped := false, false
	for i := 0; i < len(m.s); i++ {
		c := m.s[i]
		switch {
		case escaped:
			escaped = false
		case inQuote && c == '\\':
			escaped = true
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			member, m.s = m.s[:i], m.s[i+1:]
			return member, true
		}
	}
	member, m.s = m.s, ""
	return member, true
}

// parseMember parses one list member: a coding and optional parameters.
func parseMember(member string) (name string, q int, more bool) {
	name, params, _ := strings.Cut(member, ";")
	name = httpheader.TrimOWS(name)
	if !httpheader.IsToken(name) {
		return "", -1, true
	}
	q = 1000
	seenQ := false
	for params != "" {
		var p string
		p, params = cutParam(params)
		p = httpheader.TrimOWS(p)
		if p == "" {
			continue
		}
		k, v, _ := strings.Cut(p, "=")
		k, v = httpheader.TrimOWS(k), httpheader.TrimOWS(v)
		if !strings.EqualFold(k, "q") {
			continue // RFC 9110 defines no other parameter here; ignore it
		}
		w, ok := parseQValue(v)
		if !ok || seenQ {
			return "", -1, true
		}
		q, seenQ = w, true
	}
	return name, q, true
}

// cutParam cuts the first ";"-separated parameter from s, skipping ";" inside
// quoted strings.
func cutParam(s string) (param, rest string) {
	inQuote, escaped := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			escaped = false
		case inQuote && c == '\\':
			escaped = true
		case c == '"':
			inQuote = !inQuote
		case c == ';' && !inQuote:
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

// parseQValue parses an RFC 9110 §12.4.2 qvalue into thousandths:
//
//	qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
func parseQValue(v string) (int, bool) {
	if v == "" || len(v) > 5 || (v[0] != '0' && v[0] != '1') {
		return 0, false
	}
	q := int(v[0]-'0') * 1000
	if len(v) == 1 {
		return q, true
	}
	if v[1] != '.' {
		return 0, false
	}
	scale := 100
	for i := 2; i < len(v); i++ {
		d := v[i]
		if d < '0' || d > '9' {
			return 0, false
		}
		q += int(d-'0') * scale
		scale /= 10
	}
	if q > 1000 {
		return 0, false
	}
	return q, true
}
