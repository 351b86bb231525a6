package main

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/cellar-cache/cellar/internal/cli"
)

// checkKeys reports every key of the YAML document root that fileConfig
// does not have, with its line and the closest known key at that level
// ("did you mean memory?").
func checkKeys(root *yaml.Node) []error {
	var errs []error
	var walk func(n *yaml.Node, t reflect.Type, path string)
	walk = func(n *yaml.Node, t reflect.Type, path string) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			if t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode {
				for i, c := range n.Content {
					walk(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
				}
				return
			}
			t = t.Elem()
		}
		if n.Kind == yaml.DocumentNode {
			for _, c := range n.Content {
				walk(c, t, path)
			}
			return
		}
		if t.Kind() != reflect.Struct || n.Kind != yaml.MappingNode {
			return // a type mismatch: Decode reports it
		}
		known := map[string]reflect.Type{}
		var names []string
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name != "" && name != "-" {
				known[name] = f.Type
				names = append(names, name)
			}
		}
		if len(known) == 0 {
			return // a type that decodes itself
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			ft, ok := known[k.Value]
			if !ok {
				msg := fmt.Sprintf("line %d: %s: unknown key", k.Line, p)
				if s := closest(k.Value, names); s != "" {
					msg += "; did you mean " + s + "?"
				}
				errs = append(errs, errors.New(msg))
				continue
			}
			walk(n.Content[i+1], ft, p)
		}
	}
	walk(root, reflect.TypeFor[fileConfig](), "")
	return errs
}

// closest returns the name nearest to s by edit distance, if it is near
// enough to be a likely typo.
func closest(s string, names []string) string {
	best, bestD := "", 1+len(s)/3
	for _, n := range names {
		if d := editDistance(strings.ToLower(s), n); d < bestD || d == bestD && best == "" && d <= 2 {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Damerau-Levenshtein distance (adjacent swaps count
// one, as in memroy for memory).
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

var typeErrorRE = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+) `(.*)` into (.+)$")

// explainDecodeError rewrites a YAML decoding error in the config's own
// terms: the line, the key, the value and what it should be, without Go
// type names.
func explainDecodeError(err error, lines map[string]int) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	byLine := map[int]string{}
	for k, l := range lines {
		if cur, ok := byLine[l]; !ok || len(k) > len(cur) {
			byLine[l] = k
		}
	}
	var errs []error
	for _, e := range te.Errors {
		m := typeErrorRE.FindStringSubmatch(e)
		if m == nil {
			errs = append(errs, errors.New(e))
			continue
		}
		line, _ := strconv.Atoi(m[1])
		key := byLine[line]
		if key == "" {
			key = "value"
		}
		value := m[3]
		if m[2] == "seq" || m[2] == "map" {
			value = "a " + map[string]string{"seq": "list", "map": "mapping"}[m[2]]
		} else {
			value = strconv.Quote(value)
		}
		errs = append(errs, fmt.Errorf("line %d: %s: %s: want %s", line, key, value, describeGoType(m[4])))
	}
	return errors.Join(errs...)
}

// describeGoType says in words what a config field of Go type t holds.
func describeGoType(t string) string {
	t = strings.TrimPrefix(t, "*")
	switch {
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
		return "a whole number"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case t == "string":
		return "a single value (quote it if it holds a colon or starts with a special character)"
	case strings.HasPrefix(t, "[]"):
		return "a list, e.g. [a, b] or one item per line starting with -"
	case strings.HasPrefix(t, "map[string]int"):
		return "a mapping of names to whole numbers, e.g. {gzip: 6}"
	case strings.HasPrefix(t, "map["):
		return "a mapping"
	}
	return "a mapping of keys (see testdata/cellar.yaml)"
}

// knownCodings are the compression.order entries cellar understands.
var knownCodings = []string{"br", "zstd", "gzip", "identity"}

// checkCodings reports each compression.order entry that is not a coding
// cellar makes.
func (p *problems) codings(key string, order []string) {
	for i, c := range order {
		if !slices.Contains(knownCodings, strings.ToLower(c)) {
			p.add(fmt.Sprintf("%s[%d]", key, i), c, "want one of "+strings.Join(knownCodings, ", "))
		}
	}
}

// url returns the origin address v (host:port or URL) as a URL, or v
// itself after noting the problem.
func (p *problems) url(key, v string) string {
	u, err := cli.URL(v, false)
	if err != nil {
		p.add(key, v, "want host:port or http://host:port")
		return v
	}
	return u
}

// urls is url for each item of a list.
func (p *problems) urls(key string, vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = p.url(fmt.Sprintf("%s[%d]", key, i), v)
	}
	return out
}

// hostPort returns the listen address v (host:port, :port or a URL) as
// host:port.
func (p *problems) hostPort(key, v string) string {
	if v == "" {
		return v
	}
	hp, err := cli.HostPort(v)
	if err != nil {
		p.add(key, v, "want host:port, :port or http://host:port")
		return v
	}
	return hp
}
