package cache

import (
	"net/http"
	"net/textproto"
	"time"
)

// parseHTTPDate parses an HTTP-date (RFC 9110 §5.6.7) in any of its three
// forms, like http.ParseTime, with a fast path for IMF-fixdate, the form
// senders must use, because Date is parsed on every cache hit.
func parseHTTPDate(s string) (time.Time, bool) {
	s = textproto.TrimString(s)
	if t, ok := parseIMFFixdate(s); ok {
		return t, true
	}
	t, err := http.ParseTime(s)
	return t, err == nil
}

var months = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

var days = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

// parseIMFFixdate parses exactly "Sun, 06 Nov 1994 08:49:37 GMT", accepting
// what time.Parse accepts for http.TimeFormat: any valid day name (it is not
// checked against the date), and no day beyond the month's end.
func parseIMFFixdate(s string) (time.Time, bool) {
	if len(s) != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
		s[16] != ' ' || s[19] != ':' || s[22] != ':' || s[25:] != " GMT" {
		return time.Time{}, false
	}
	num := func(a, b int) (int, bool) {
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
	day, ok1 := num(5, 7)
	year, ok2 := num(12, 16)
	hh, ok3 := num(17, 19)
	mm, ok4 := num(20, 22)
	ss, ok5 := num(23, 25)
	if !(ok1 && ok2 && ok3 && ok4 && ok5) || hh > 23 || mm > 59 || ss > 59 || day < 1 {
		return time.Time{}, false
	}
	month := 0
	for i, m := range months {
		if s[8:11] == m {
			month = i + 1
			break
		}
	}
	if month == 0 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hh, mm, ss, 0, time.UTC)
	if t.Day() != day {
		return time.Time{}, false // day out of range
	}
	for _, d := range days {
		if s[:3] == d {
			return t, true
		}
	}
	return time.Time{}, false
}
