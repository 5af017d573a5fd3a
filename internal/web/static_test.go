package web

import (
	"io/fs"
	"path"
	"regexp"
	"strings"
	"testing"
)

// staticFiles is every embedded file under static/ with its content.
func staticFiles(t *testing.T) map[string]string {
	t.Helper()
	static, err := fs.Sub(files, "static")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	err = fs.WalkDir(static, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(static, p)
		out[p] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var (
	// import x from "./y.js"; import "./y.js"; export {x} from "./y.js"
	staticImport = regexp.MustCompile(`(?m)^\s*(?:import|export)\s+(?:[^;"'()]*?\s+from\s*)?["']([^"']+)["']`)
	// import("./y.js")
	dynamicImport = regexp.MustCompile(`\bimport\(\s*["']([^"']+)["']\s*\)`)
)

// imports lists the module specifiers src imports, statically or dynamically.
func imports(src string) []string {
	var out []string
	for _, re := range []*regexp.Regexp{staticImport, dynamicImport} {
		for _, m := range re.FindAllStringSubmatch(src, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

func TestImportsParse(t *testing.T) {
	src := `import { a, b } from "./a.js";
import * as c from '../c.js';
import "./side.js";
export { d } from "./d.js";
const v = await import("./views/v.js").then((m) => m.x);
// import is also a word in comments, as in "we import nothing here"
const s = "import";
export const k = "./not-a-module.js";`
	got := strings.Join(imports(src), " ")
	if want := "./a.js ../c.js ./side.js ./d.js ./views/v.js"; got != want {
		t.Errorf("imports = %q, want %q", got, want)
	}
}

// Every module a module imports is embedded: a missing one would fail only
// in the browser, and only when that page is opened.
func TestEveryImportedModuleIsEmbedded(t *testing.T) {
	all := staticFiles(t)
	n := 0
	for name, src := range all {
		if path.Ext(name) != ".js" {
			continue
		}
		for _, spec := range imports(src) {
			n++
			if !strings.HasPrefix(spec, "./") && !strings.HasPrefix(spec, "../") {
				t.Errorf("%s imports %q: only relative paths to embedded modules (no bare names, no URLs)", name, spec)
				continue
			}
			target := path.Join(path.Dir(name), spec)
			if strings.HasPrefix(target, "../") {
				t.Errorf("%s imports %q, outside static/", name, spec)
				continue
			}
			if _, ok := all[target]; !ok {
				t.Errorf("%s imports %q: %s is not embedded", name, spec, target)
			}
		}
	}
	if n == 0 {
		t.Fatal("found no imports at all: the patterns are wrong")
	}
}

// Nothing under static/ may need 'unsafe-inline' or 'unsafe-eval', or ask
// another origin for anything.
func TestStaticFilesKeepTheCSP(t *testing.T) {
	rules := []struct {
		ext  string // "" for every file
		code bool   // JavaScript rules look at code, not comments
		re   *regexp.Regexp
		what string
	}{
		{"", true, regexp.MustCompile(`\b(?:innerHTML|outerHTML|insertAdjacentHTML)\b|document\.write`), "builds HTML from strings (use dom.js h())"},
		{"", true, regexp.MustCompile(`\beval\s*\(|\bnew\s+Function\s*\(|\bsetTimeout\(\s*["'` + "`" + `]`), "evaluates strings as code"},
		{".html", false, regexp.MustCompile(`\sstyle\s*=`), "has a style attribute"},
		{".svg", false, regexp.MustCompile(`\sstyle\s*=|<script`), "has a style attribute or a script"},
		{".html", false, regexp.MustCompile(`\son[a-z]+\s*=`), "has an inline event handler"},
		{".js", true, regexp.MustCompile(`setAttribute\(\s*["']style["']|\bstyle\s*:\s*["'` + "`" + `]`), "sets a style attribute (blocked by the CSP; set el.style.x)"},
		{"", false, regexp.MustCompile(`(?i)\b(?:https?|wss?)://[^\s"'<>` + "`" + `)]*`), "names another origin"},
	}
	// XML namespaces are names, not requests.
	namespace := regexp.MustCompile(`^http://www\.w3\.org/(?:2000/svg|1999/xlink|1999/xhtml)$`)
	for name, src := range staticFiles(t) {
		code := src
		if path.Ext(name) == ".js" {
			code = jsComment.ReplaceAllStringFunc(src, blank)
		}
		for _, r := range rules {
			if r.ext != "" && path.Ext(name) != r.ext {
				continue
			}
			text := src
			if r.code {
				text = code
			}
			for _, loc := range r.re.FindAllStringIndex(text, -1) {
				hit := text[loc[0]:loc[1]]
				if namespace.MatchString(hit) {
					continue
				}
				line := strings.Count(src[:loc[0]], "\n") + 1
				t.Errorf("%s:%d %s: %q", name, line, r.what, hit)
			}
		}
	}
}

// jsComment is a /* block */ or a // line comment (a "//" after a colon, as
// in a URL, is not one); good enough for the files here, which the rules
// above then read without their prose.
var jsComment = regexp.MustCompile(`/\*(?s:.*?)\*/|(?:^|[^:"'])//[^\n]*`)

// blank replaces s by as many spaces, keeping newlines, so line numbers hold.
func blank(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' {
			return r
		}
		return ' '
	}, s)
}
