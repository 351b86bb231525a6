package cache

import "strings"

// validTargetedValue reports whether v is a valid value for a targeted
// cache-control field (RFC 9213 §2.1): a Structured Field Dictionary (RFC
// 9651 §3.2, parsed as in §4.2.2) whose delta-seconds directives (max-age,
// s-maxage, stale-while-revalidate, stale-if-error) are Integers. A field
// that fails is ignored entirely (RFC 9213 §2.1), so the next field in
// cellar's order governs. Keys are lowercase by the grammar, so
// "MaX-aGe=60" is invalid too.
func validTargetedValue(v string) bool {
	p := sfParser{s: v}
	p.skipSP()
	if p.done() {
		return false
	}
	for {
		key, ok := p.key()
		if !ok {
			return false
		}
		integer := false
		if p.peek() == '=' {
			p.i++
			if p.peek() == '(' {
				if !p.innerList() {
					return false
				}
			} else {
				var ok bool
				if integer, ok = p.bareItem(); !ok {
					return false
				}
			}
		}
		if !p.params() {
			return false
		}
		switch key {
		case "max-age", "s-maxage", "stale-while-revalidate", "stale-if-error":
			if !integer {
				return false
			}
		}
		p.skipOWS()
		if p.done() {
			return true
		}
		if p.peek() != ',' {
			return false
		}
		p.i++
		p.skipOWS()
		if p.done() {
			return false // trailing comma
		}
	}
}

type sfParser struct {
	s string
	i int
}

func (p *sfParser) done() bool { return p.i >= len(p.s) }

func (p *sfParser) peek() byte {
	if p.done() {
		return 0
	}
	return p.s[p.i]
}

func (p *sfParser) skipSP() {
	for p.peek() == ' ' {
		p.i++
	}
}

func (p *sfParser) skipOWS() {
	for c := p.peek(); c == ' ' || c == '\t'; c = p.peek() {
		p.i++
	}
}

func isLCAlpha(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool   { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool   { return isLCAlpha(c) || c >= 'A' && c <= 'Z' }

// key parses an sf key: ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" ).
func (p *sfParser) key() (string, bool) {
	start := p.i
	if c := p.peek(); !isLCAlpha(c) && c != '*' {
		return "", false
	}
	p.i++
	for c := p.peek(); isLCAlpha(c) || isDigit(c) || strings.IndexByte("_-.*", c) >= 0 && c != 0; c = p.peek() {
		p.i++
	}
	return p.s[start:p.i], true
}

// params parses *( ";" *SP key [ "=" bare-item ] ).
func (p *sfParser) params() bool {
	for p.peek() == ';' {
		p.i++
		p.skipSP()
		if _, ok := p.key(); !ok {
			return false
		}
		if p.peek() == '=' {
			p.i++
			if _, ok := p.bareItem(); !ok {
				return false
			}
		}
	}
	return true
}

// innerList parses "(" *SP [ item *( 1*SP item ) *SP ] ")" parameters.
func (p *sfParser) innerList() bool {
	p.i++ // "("
	for {
		p.skipSP()
		if p.peek() == ')' {
			p.i++
			return p.params()
		}
		if _, ok := p.bareItem(); !ok || !p.params() {
			return false
		}
		if c := p.peek(); c != ' ' && c != ')' {
			return false
		}
	}
}

// bareItem parses an Integer, Decimal, String, Token, Byte Sequence or
// Boolean; integer reports an Integer.
func (p *sfParser) bareItem() (integer, ok bool) {
	c := p.peek()
	switch {
	case c == '-' || isDigit(c):
		return p.number()
	case c == '"':
		p.i++
		for !p.done() {
			c := p.s[p.i]
			p.i++
			switch {
			case c == '\\':
				if n := p.peek(); n != '"' && n != '\\' {
					return false, false
				}
				p.i++
			case c == '"':
				return false, true
			case c < 0x20 || c > 0x7e:
				return false, false
			}
		}
		return false, false
	case c == '*' || isAlpha(c):
		p.i++
		for c := p.peek(); c != 0 && (isTchar(c) || c == ':' || c == '/'); c = p.peek() {
			p.i++
		}
		return false, true
	case c == ':':
		p.i++
		for c := p.peek(); isAlpha(c) || isDigit(c) || c == '+' || c == '/' || c == '='; c = p.peek() {
			p.i++
		}
		if p.peek() != ':' {
			return false, false
		}
		p.i++
		return false, true
	case c == '?':
		p.i++
		if c := p.peek(); c != '0' && c != '1' {
			return false, false
		}
		p.i++
		return false, true
	}
	return false, false
}

// number parses an Integer (up to 15 digits) or a Decimal (up to 12
// integer and 3 fraction digits).
func (p *sfParser) number() (integer, ok bool) {
	if p.peek() == '-' {
		p.i++
	}
	n := 0
	for isDigit(p.peek()) {
		p.i++
		n++
	}
	if n == 0 {
		return false, false
	}
	if p.peek() != '.' {
		return n <= 15, n <= 15
	}
	p.i++
	f := 0
	for isDigit(p.peek()) {
		p.i++
		f++
	}
	return false, n <= 12 && f >= 1 && f <= 3
}

// isTchar reports the token characters of RFC 9110 §5.6.2.
func isTchar(c byte) bool {
	return isAlpha(c) || isDigit(c) || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
