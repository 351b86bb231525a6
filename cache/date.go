package cache

import (
	"net/textproto"
	"strings"
	"time"
)

// parseHTTPDate parses an HTTP-date (RFC 9110 §5.6.7) in any of its three
// forms: IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), the obsolete
// rfc850-date ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime-date ("Sun Nov
// 6 08:49:37 1994"). The grammar is followed exactly: fixed-width
// two-digit fields, single spaces, "GMT" (so an Expires in another zone, with
// a one-digit hour or doubled spaces is invalid, hence already expired, RFC
// 9111 §5.3; the rfc850 form also takes "UTC", see parseRFC850). Day and month names and "GMT" are matched case-insensitively,
// as a lenient recipient may. The day name is not checked against the date;
// a day beyond the month's end is invalid. A two-digit rfc850 year is 19xx
// from 69 on, else 20xx, as in net/http (the package never reads the clock,
// so §5.6.7's fifty-year rule is approximated).
func parseHTTPDate(s string) (time.Time, bool) {
	s = textproto.TrimString(s)
	if t, ok := parseIMFFixdate(s); ok {
		return t, true
	}
	if t, ok := parseRFC850(s); ok {
		return t, true
	}
	return parseASCTime(s)
}

var months = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

var days = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

var longDays = [7]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}

// digits parses s[a:b] as decimal digits only.
func digits(s string, a, b int) (int, bool) {
	n := 0
	for i := a; i < b; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// month returns 1-12 for a three-letter month name, case-insensitively.
func month(s string) int {
	for i, m := range months {
		if strings.EqualFold(s, m) {
			return i + 1
		}
	}
	return 0
}

// dayName reports whether s is one of names, case-insensitively.
func dayName(s string, names []string) bool {
	for _, d := range names {
		if strings.EqualFold(s, d) {
			return true
		}
	}
	return false
}

// clockTime parses "HH:MM:SS" at s[i:i+8].
func clockTime(s string, i int) (hh, mm, ss int, ok bool) {
	if s[i+2] != ':' || s[i+5] != ':' {
		return 0, 0, 0, false
	}
	hh, ok1 := digits(s, i, i+2)
	mm, ok2 := digits(s, i+3, i+5)
	ss, ok3 := digits(s, i+6, i+8)
	if !(ok1 && ok2 && ok3) || hh > 23 || mm > 59 || ss > 59 {
		return 0, 0, 0, false
	}
	return hh, mm, ss, true
}

// date builds the UTC time, rejecting a day beyond the month's end.
func date(year, mon, day, hh, mm, ss int) (time.Time, bool) {
	if mon == 0 || day < 1 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(mon), day, hh, mm, ss, 0, time.UTC)
	if t.Day() != day {
		return time.Time{}, false
	}
	return t, true
}

// parseIMFFixdate parses exactly "Sun, 06 Nov 1994 08:49:37 GMT".
func parseIMFFixdate(s string) (time.Time, bool) {
	if len(s) != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
		s[16] != ' ' || !strings.EqualFold(s[25:], " GMT") || !dayName(s[:3], days[:]) {
		return time.Time{}, false
	}
	day, ok1 := digits(s, 5, 7)
	year, ok2 := digits(s, 12, 16)
	hh, mm, ss, ok3 := clockTime(s, 17)
	if !(ok1 && ok2 && ok3) {
		return time.Time{}, false
	}
	return date(year, month(s[8:11]), day, hh, mm, ss)
}

// parseRFC850 parses exactly "Sunday, 06-Nov-94 08:49:37 GMT". "UTC" is
// accepted for "GMT" in this obsolete form only, because Go's time.RFC850
// layout writes it for UTC times.
func parseRFC850(s string) (time.Time, bool) {
	name, rest, ok := strings.Cut(s, ", ")
	if !ok || !dayName(name, longDays[:]) || len(rest) != 22 || rest[2] != '-' || rest[6] != '-' ||
		rest[9] != ' ' || !(strings.EqualFold(rest[18:], " GMT") || rest[18:] == " UTC") {
		return time.Time{}, false
	}
	day, ok1 := digits(rest, 0, 2)
	yy, ok2 := digits(rest, 7, 9)
	hh, mm, ss, ok3 := clockTime(rest, 10)
	if !(ok1 && ok2 && ok3) {
		return time.Time{}, false
	}
	year := 2000 + yy
	if yy >= 69 {
		year = 1900 + yy
	}
	return date(year, month(rest[3:6]), day, hh, mm, ss)
}

// parseASCTime parses exactly "Sun Nov  6 08:49:37 1994" (a one-digit day
// is padded with a space).
func parseASCTime(s string) (time.Time, bool) {
	if len(s) != 24 || s[3] != ' ' || s[7] != ' ' || s[10] != ' ' || s[19] != ' ' || !dayName(s[:3], days[:]) {
		return time.Time{}, false
	}
	var day int
	var ok1 bool
	if s[8] == ' ' {
		day, ok1 = digits(s, 9, 10)
	} else {
		day, ok1 = digits(s, 8, 10)
	}
	hh, mm, ss, ok2 := clockTime(s, 11)
	year, ok3 := digits(s, 20, 24)
	if !(ok1 && ok2 && ok3) {
		return time.Time{}, false
	}
	return date(year, month(s[4:7]), day, hh, mm, ss)
}
